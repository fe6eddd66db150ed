"""`miaofa-merchant`: a merchant's products, stock, orders (and their delivery by hand), upstreams,
webhook, shop settings, risk rules and review queue, over the merchant HTTP API (one module per area
in infra/merchant/commands/).

    miaofa-merchant products list|show|create|change|deactivate
    miaofa-merchant stock import|levels|remove|export --product ID
    miaofa-merchant orders list|show|refund|fulfil|export
    miaofa-merchant fulfilments list
    miaofa-merchant upstreams set|show|delete NAME
    miaofa-merchant webhooks set|show|delete|test
    miaofa-merchant shop show|set
    miaofa-merchant risk show|set FILE
    miaofa-merchant reviews list|approve|reject ID
    miaofa-merchant licenses list --order ID | show|revoke|reinstate ID
    miaofa-merchant license-keys show|rotate

Where and who: --url and --key, else MIAOFA_URL and MIAOFA_MERCHANT_KEY, else the local runtime's
`.miaofa/local.json` (written by `make run`). `--json` on every command. Nothing it prints holds a
code, except what `stock export` writes and `orders show --codes` (a manual order's delivered text
too); nor a buyer's fields, except `orders show --buyer-input`; nor a secret, except the one
`webhooks set` or `upstreams set` has the shop make. A request that is safe to send again (reads, PUT,
PATCH, DELETE, a stock chunk, a refund, a fulfilment) is retried after a lost answer or a 429/5xx;
one that is not (`products create`, `webhooks test`) is sent once. Exit codes: 0 done, 1 refused or
failed, 2 usage or bad input, 130 interrupted.
"""

import sys
from collections.abc import Sequence
from functools import partial

from infra.cli_support import Console, Parser, exit_code
from infra.merchant.api import PROG, Api, Reply, connect
from infra.merchant.commands import (
    fulfilments,
    licenses,
    orders,
    products,
    reviews,
    risk,
    shop,
    stock,
    upstreams,
    webhooks,
    where_parser,
)

__all__ = ["Api", "Console", "Reply", "build_parser", "main"]


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="A merchant's products, stock, orders, upstreams, webhook, shop settings, risk rules "
        "and reviews, over the merchant API.",
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{products,stock,orders,fulfilments,upstreams,webhooks,shop,risk,reviews,licenses,license-keys}",
    )
    where = where_parser()
    for area in (products, stock, orders, fulfilments, upstreams, webhooks, shop, risk, reviews, licenses):
        area.register(commands, where)
    return parser


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Run one command; returns the exit code."""
    console = console or Console()
    return exit_code(PROG, console, partial(_command, argv, console))


def _command(argv: Sequence[str] | None, console: Console) -> int:
    args = build_parser().parse_args(argv)
    # `area`: the Command class of the area (products, stock, ...), `run`: its method for the action.
    return int(args.run(args.area(args, connect(args, console), console)))


if __name__ == "__main__":
    sys.exit(main())
