"""`miaofa-merchant webhooks`: set (prints the new secret, once), show, delete, send a test event."""

import argparse
from typing import Any

from infra.cli_support import Parser
from infra.merchant.api import ONCE
from infra.merchant.commands import Command

EVENTS = ("order.paid", "order.delivered", "order.refunded", "stock.low")


class Webhooks(Command):
    def set(self) -> int:
        """Sent again after a lost answer, it rotates the secret once more: the one printed is the one
        in force, so it is safe to retry."""
        body: dict[str, Any] = {"url": self.args.target}
        if self.args.events:
            body["events"] = self.args.events
        webhook = self.api.json_call("PUT", "/merchant/webhook", self.console, "set the webhook", body)
        self.show(
            webhook,
            lambda: [
                f"url     {webhook['url']}",
                f"events  {', '.join(webhook['events'])}",
                f"secret  {webhook['secret']}",
            ],
        )
        self.console.note("the secret is shown only now: verify each request's Miaofa-Signature with it")
        return 0

    def show_it(self) -> int:
        webhook = self.api.call("GET", "/merchant/webhook", self.console, "the webhook").json()
        self.show(webhook, lambda: [f"url     {webhook['url']}", f"events  {', '.join(webhook['events'])}"])
        return 0

    def delete(self) -> int:
        self.api.call("DELETE", "/merchant/webhook", self.console, "delete the webhook")
        self.show({"deleted": True}, lambda: ["webhook deleted: no event is sent any more"])
        return 0

    def test(self) -> int:
        """Every call sends one more event: sent once, never retried."""
        queued = self.api.json_call(
            "POST", "/merchant/webhook/test", self.console, "send a test event", {}, attempts=ONCE
        )
        self.show(queued, lambda: [f"queued {queued['type']} {queued['event_id']} to the webhook"])
        return 0


def _events(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in EVENTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"events are {', '.join(EVENTS)}, comma-separated; not {text!r}")
    return chosen


def register(commands: Any, where: Parser) -> None:
    webhooks = commands.add_parser("webhooks", help="where the shop POSTs your signed order and stock events")
    webhooks.set_defaults(area=Webhooks)
    actions = webhooks.add_subparsers(dest="action", required=True, metavar="{set,show,delete,test}")
    chosen = actions.add_parser(
        "set",
        parents=[where],
        help="set the webhook; prints a new secret, once (safe to run again: the printed secret is current)",
    )
    chosen.add_argument(
        "target", metavar="URL", help="where to POST: https://… (make run: http://127.0.0.1:PORT/… too)"
    )
    chosen.add_argument(
        "--events", type=_events, metavar="E,E", help=f"of {', '.join(EVENTS)} (default: all)"
    )
    chosen.set_defaults(run=Webhooks.set)
    actions.add_parser("show", parents=[where], help="the URL and events (never the secret)").set_defaults(
        run=Webhooks.show_it
    )
    actions.add_parser(
        "delete", parents=[where], help="send nothing any more (safe to run again)"
    ).set_defaults(run=Webhooks.delete)
    actions.add_parser(
        "test", parents=[where], help="send a signed webhook.test event (sent once: each run is a new event)"
    ).set_defaults(run=Webhooks.test)
