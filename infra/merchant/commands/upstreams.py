"""`miaofa-merchant upstreams`: set (the supplier's secret from a file, or a new one printed once),
show, delete the upstreams that credit the merchant's top-up products (docs/topup.md)."""

from typing import Any

from infra.cli_support import Console, Parser, UsageError, numeric
from infra.merchant.api import PROG, quoted
from infra.merchant.commands import Command, read_input

SHOWN = ("name", "url", "connect_timeout_ms", "read_timeout_ms")
WIDTH = max(len(name) for name in (*SHOWN, "secret"))


class Upstreams(Command):
    def path(self) -> str:
        return f"/merchant/upstreams/{quoted(self.args.name)}"

    def set(self) -> int:
        """A PUT of the whole upstream. With --secret-file the same again changes nothing more; without,
        a repeat after a lost answer makes another secret, and the one printed is the one in force: safe
        to retry either way."""
        body: dict[str, Any] = {"url": self.args.target}
        if self.args.secret_file is not None:
            body["secret"] = _secret(self.args.secret_file, self.console)
        for name in ("connect_timeout_ms", "read_timeout_ms"):
            if getattr(self.args, name) is not None:
                body[name] = getattr(self.args, name)
        upstream = self.api.json_call(
            "PUT", self.path(), self.console, f"set upstream {self.args.name}", body
        )
        made = upstream.get("secret")
        self.show(upstream, lambda: [*_lines(upstream), *([f"{'secret':<{WIDTH}}  {made}"] if made else [])])
        if made:
            self.console.note(
                f"the secret is shown only now: store it and give it to the supplier of {self.args.name}, who "
                f"verifies every request with it and signs every answer and callback (any earlier secret "
                f"of {self.args.name} no longer verifies)"
            )
        return 0

    def show_it(self) -> int:
        upstream = self.api.call("GET", self.path(), self.console, f"upstream {self.args.name}").json()
        self.show(upstream, lambda: _lines(upstream))
        return 0

    def delete(self) -> int:
        self.api.call("DELETE", self.path(), self.console, f"delete upstream {self.args.name}")
        self.show(
            {"name": self.args.name, "deleted": True},
            lambda: [
                f"upstream {self.args.name} deleted: orders of its top-up products wait, then follow "
                f"their when_undeliverable policy"
            ],
        )
        return 0


def _lines(upstream: dict[str, Any]) -> list[str]:
    return [f"{name:<{WIDTH}}  {upstream.get(name, '-')}" for name in SHOWN]


def _secret(name: str, console: Console) -> str:
    """The supplier's secret, from a file (`-`: stdin): its one line, a last line break dropped. Never
    printed, not even in an error."""
    where = "stdin" if name == "-" else name
    secret = read_input(name, console).removesuffix("\n").removesuffix("\r")
    if not secret:
        raise UsageError(f"{PROG}: {where} holds no secret")
    if "\n" in secret or any(c.isspace() or not c.isprintable() for c in secret):
        raise UsageError(f"{PROG}: {where}: a secret is one line of printable characters, without spaces")
    return secret


def register(commands: Any, where: Parser) -> None:
    upstreams = commands.add_parser("upstreams", help="the suppliers' APIs that credit your top-up products")
    upstreams.set_defaults(area=Upstreams)
    actions = upstreams.add_subparsers(dest="action", required=True, metavar="{set,show,delete}")
    one = Parser(add_help=False)
    one.add_argument("name", metavar="NAME", help="as a product's --upstream names it: a-z, 0-9, _ and -")
    timeout = numeric(int, lambda n: n < 1, "must be 1 or more: {text}")

    chosen = actions.add_parser(
        "set",
        parents=[where, one],
        help="register or replace an upstream; without --secret-file prints a new secret, once (safe to "
        "run again: the printed secret is current)",
        description="Register or replace an upstream (PUT: a timeout not given is the shop's default). "
        "Without --secret-file the shop makes a secret for the supplier and shows it this once.",
    )
    # The URL is an argument, as for `webhooks set`: --url is the shop's, as in every command.
    chosen.add_argument("target", metavar="URL", help="its base URL: https://… (requests go to URL/topups)")
    chosen.add_argument(
        "--secret-file",
        metavar="FILE",
        help="the supplier's secret, if it gave you one (- : stdin); never printed",
    )
    chosen.add_argument(
        "--connect-timeout-ms", type=timeout, metavar="N", help="the shop's default unless given"
    )
    chosen.add_argument(
        "--read-timeout-ms", type=timeout, metavar="N", help="the shop's default unless given"
    )
    chosen.set_defaults(run=Upstreams.set)
    actions.add_parser(
        "show", parents=[where, one], help="its URL and timeouts (never the secret)"
    ).set_defaults(run=Upstreams.show_it)
    actions.add_parser(
        "delete", parents=[where, one], help="remove it: its products' orders wait (safe to run again)"
    ).set_defaults(run=Upstreams.delete)
