"""`miaofa-merchant fulfilments`: the paid manual orders waiting for the merchant, the most urgent
first, each with the time the buyer was promised (late ones marked). `orders fulfil` delivers one."""

from datetime import UTC, datetime
from typing import Any

from infra.cli_support import Parser, count_of
from infra.merchant.commands import Command

LISTED = 100  # the API lists at most this many, the most urgent


class Fulfilments(Command):
    def list(self) -> int:
        body = self.api.call("GET", "/merchant/fulfilments", self.console, "fulfilments").json()
        waiting: list[dict[str, Any]] = body.get("orders", []) if isinstance(body, dict) else []
        if self.args.json:
            self.console.json({"orders": waiting})
            return 0
        now = self.console.now()
        late = [o for o in waiting if _time(o["promised_by"]) < now]
        self.console.print(
            *(
                f"{o['order_id']}  {o['product_id']}  x{o['quantity']:<3} paid {_shown(o.get('paid_at'))}  "
                f"promised by {_shown(o['promised_by'])}  {_due(_time(o['promised_by']), now)}"
                for o in waiting
            ),
            f"{count_of(len(waiting), 'order')} waiting" + (f", {len(late)} late" if late else ""),
        )
        if len(waiting) >= LISTED:
            self.console.note(f"the {LISTED} most urgent are listed: fulfil or refund them to see the others")
        return 0


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _shown(text: str | None) -> str:
    """A time as `2026-05-01 08:30:00`, in UTC as every time the CLI prints."""
    return _time(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if text else "-" * 19


def _due(promised: datetime, now: datetime) -> str:
    minutes = int(abs((promised - now).total_seconds()) // 60)
    return f"LATE by {minutes} min" if promised < now else f"in {minutes} min"


def register(commands: Any, where: Parser) -> None:
    fulfilments = commands.add_parser(
        "fulfilments", help="paid manual orders waiting for you to deliver them"
    )
    fulfilments.set_defaults(area=Fulfilments)
    actions = fulfilments.add_subparsers(dest="action", required=True, metavar="{list}")
    actions.add_parser(
        "list",
        parents=[where],
        help="the most urgent first: order, product, quantity, paid, promised by (late ones marked)",
    ).set_defaults(run=Fulfilments.list)
