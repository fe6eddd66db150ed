"""`miaofa-merchant shop`: the shop's settings (name, logo, contact, announcement, support e-mail,
default language)."""

import shlex
from typing import Any

from infra.cli_support import Parser, Refused, UsageError
from infra.merchant.api import PROG
from infra.merchant.commands import Command

SHOP_FIELDS = ("name", "logo_url", "contact", "announcement", "support_email", "default_language")
LANGUAGES = ("zh-CN", "en")
FLAGS = {
    "name": "--name",
    "logo_url": "--logo-url",
    "contact": "--contact",
    "announcement": "--announcement",
    "support_email": "--support-email",
    "default_language": "--language",
}
CONFLICT = 409


class Shop(Command):
    def show_it(self) -> int:
        self._print(self.api.call("GET", "/merchant/shop", self.console, "shop settings").json())
        return 0

    def set(self) -> int:
        """The same settings again change nothing more: safe to retry. The PUT carries the version
        the settings were read at, so a change someone made in between is never silently undone
        (`--force`: the last write wins)."""
        given = {name: getattr(self.args, name) for name in SHOP_FIELDS}
        changes = {name: value for name, value in given.items() if value is not None}
        if not changes:
            raise UsageError(f"{PROG} shop set: give at least one setting to change (see --help)")
        # The API takes the whole settings (PUT): the current ones, with these changed.
        current = self.api.call("GET", "/merchant/shop", self.console, "shop settings").json()
        wanted = {name: current.get(name) for name in SHOP_FIELDS} | changes
        if not self.args.force:
            wanted["version"] = current.get("version")
        reply = self.api.json_reply(
            "PUT", "/merchant/shop", self.console, "shop settings", wanted, answered={CONFLICT}
        )
        if reply.status == CONFLICT:
            again = " ".join(
                [PROG, "shop", "set", *(f"{FLAGS[n]} {shlex.quote(v)}" for n, v in changes.items())]
            )
            raise Refused(
                f"shop settings: not changed, as someone else changed them after they were read "
                f"({reply.error()[1]}).\nRun the command again to apply your change to their settings "
                f"(`{PROG} shop show` shows them): {again}\n(or add --force to write over their change)"
            )
        self._print(reply.json())
        return 0

    def _print(self, shop: dict[str, Any]) -> None:
        def lines() -> list[str]:
            width = max(len(name) for name in ("merchant_id", *SHOP_FIELDS, "version"))
            out = []
            for name in ("merchant_id", *SHOP_FIELDS, "version"):
                value = shop.get(name)
                text = "-" if value in (None, "") else str(value)
                first, *rest = text.split("\n")  # an announcement's further lines, indented under it
                out += [f"{name:<{width}}  {first}", *(f"{'':<{width}}  {line}" for line in rest)]
            return out

        self.show(shop, lines)


def register(commands: Any, where: Parser) -> None:
    shop = commands.add_parser("shop", help="the shop's settings: name, logo, contact, announcement, ...")
    shop.set_defaults(area=Shop)
    actions = shop.add_subparsers(dest="action", required=True, metavar="{show,set}")
    actions.add_parser("show", parents=[where], help="the shop's settings").set_defaults(run=Shop.show_it)
    change = actions.add_parser(
        "set",
        parents=[where],
        help="change the settings given (an empty value clears one; safe to run again)",
    )
    change.add_argument("--name", help="the shop's name, as buyers see it")
    change.add_argument("--logo-url", dest="logo_url", metavar="URL", help="an https:// URL of the logo")
    change.add_argument("--contact", metavar="TEXT", help="how buyers reach the shop (one line)")
    change.add_argument("--announcement", metavar="TEXT", help="shown atop the shop's pages")
    change.add_argument(
        "--support-email", dest="support_email", metavar="ADDRESS", help="for buyers' questions"
    )
    change.add_argument(
        "--language",
        dest="default_language",
        choices=LANGUAGES,
        help="the language the shop's pages start in",
    )
    change.add_argument(
        "--force",
        action="store_true",
        help="write even if someone changed the settings since they were read (default: refuse)",
    )
    change.set_defaults(run=Shop.set)
