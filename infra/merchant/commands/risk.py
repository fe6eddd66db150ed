"""`miaofa-merchant risk`: the shop's risk rules (docs/risk.md): show them, or set them from a JSON file
(the document `risk show --json` prints, edited)."""

import json
from typing import Any

from infra.cli_support import Parser, Refused, UsageError
from infra.merchant.api import PROG
from infra.merchant.commands import Command, read_input

CONFLICT = 409
SUMMARY = ("kind", "window", "max_orders", "above", "at_least")  # the settings a rule's line shows


class Risk(Command):
    def show_it(self) -> int:
        params = f"?currency={self.args.currency}" if self.args.currency else ""
        rules = self.api.call("GET", f"/merchant/risk/rules{params}", self.console, "risk rules").json()
        self._print(rules)
        return 0

    def set(self) -> int:
        """The same file again changes nothing more: safe to retry. The PUT carries the version the
        file was read at (its own `version`, as `risk show --json` wrote it; else the one read now), so a
        change someone made in between is never silently undone (`--force`: the last write wins)."""
        text = read_input(self.args.file, self.console)
        try:
            document = json.loads(text)
        except ValueError as error:
            raise UsageError(f"{PROG} risk set: {self.args.file} is not JSON ({error})") from None
        if not isinstance(document, dict):
            raise UsageError(
                f"{PROG} risk set: {self.args.file} must hold one JSON object, the rules document"
            )
        document.pop("defaults", None)  # as `risk show --json` prints it
        if self.args.force or not isinstance(document.get("version"), int):
            current = self.api.call("GET", "/merchant/risk/rules", self.console, "risk rules").json()
            document["version"] = current.get("version", 0)
        reply = self.api.json_reply(
            "PUT", "/merchant/risk/rules", self.console, "risk rules", document, answered={CONFLICT}
        )
        if reply.status == CONFLICT:
            raise Refused(
                f"risk rules: not changed, as someone else changed them after version "
                f"{document['version']} was read ({reply.error()[1]}).\nRun `{PROG} risk show --json`, apply "
                f"your change to what it prints and set that (or add --force to write over their change)"
            )
        self._print(reply.json())
        return 0

    def _print(self, rules: dict[str, Any]) -> None:
        def lines() -> list[str]:
            listed = rules.get("rules") or []
            out = [
                f"version    {rules.get('version')}"
                + ("  (the defaults: none set yet)" if rules.get("defaults") else ""),
                f"review_at  {_or_off(rules.get('review_at'))}",
                f"block_at   {_or_off(rules.get('block_at'))}",
            ]
            width = max((len(str(rule.get("id"))) for rule in listed), default=2)
            for rule in listed:
                settings = " ".join(
                    f"{name}={_shown(rule[name])}" for name in SUMMARY if rule.get(name) is not None
                )
                values = rule.get("values")
                if values is not None:
                    settings += f" values={len(values)}"
                mode = " dry-run" if rule.get("dry_run") else ""
                out.append(
                    f"{rule.get('id', ''):<{width}}  {rule.get('type', ''):<16} {rule.get('action', ''):<6} "
                    f"score {rule.get('score', 0):>3}{mode}  {settings}".rstrip()
                )
            out.append(f"{len(listed)} rule{'' if len(listed) == 1 else 's'}")
            return out

        self.show(rules, lines)


def _or_off(value: Any) -> str:
    return "off" if value is None else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, dict) and {"amount", "currency"} <= set(value):
        return f"{value['amount']}{value['currency']}"  # minor units, as the document has them
    return str(value)


def register(commands: Any, where: Parser) -> None:
    risk = commands.add_parser("risk", help="the shop's risk rules: show, or set from a JSON file")
    risk.set_defaults(area=Risk)
    actions = risk.add_subparsers(dest="action", required=True, metavar="{show,set}")
    shown = actions.add_parser("show", parents=[where], help="the rules (the defaults until set)")
    shown.add_argument("--currency", metavar="XXX", help="the defaults' amounts in it (default: CNY)")
    shown.set_defaults(run=Risk.show_it)
    change = actions.add_parser(
        "set",
        parents=[where],
        help="replace the rules with a JSON file's document (`risk show --json`, edited; safe to run again)",
    )
    change.add_argument("file", metavar="FILE", help="the rules document as JSON (-: stdin)")
    change.add_argument("--force", action="store_true", help="write over a change made since it was read")
    change.set_defaults(run=Risk.set)
