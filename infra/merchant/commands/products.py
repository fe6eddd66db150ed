"""`miaofa-merchant products`: list, show, create, change (PATCH: only the fields given), deactivate."""

import argparse
from typing import Any

from infra.cli_support import Parser, UsageError, count_of, numeric
from infra.merchant.api import ONCE, PROG, quoted
from infra.merchant.commands import Command, price, yes_no
from shared.money import from_major

POLICIES = ("refund", "hold")
# Shown by `products show`, in this order (the rest of the answer is in --json).
SHOWN = (
    "id",
    "name",
    "active",
    "price",
    "price_tiers",
    "min_per_order",
    "max_per_order",
    "daily_limit_per_buyer",
    "unpaid_limit_per_client",
    "low_stock_threshold",
    "when_undeliverable",
    "email_codes",
    "sales_per_code",
    "category",
    "description",
    "instructions",
)


class Products(Command):
    def path(self) -> str:
        return f"/merchant/products/{quoted(self.args.id)}"

    def list(self) -> int:
        products: list[dict[str, Any]] = []
        cursor = None
        query: dict[str, str] = {} if self.args.active is None else {"active": str(self.args.active).lower()}
        while True:
            page_query = {**query, "cursor": cursor} if cursor else query
            body = self.api.call(
                "GET", "/merchant/products", self.console, "products", query=page_query or None
            ).json()
            products.extend(body.get("products", []))
            cursor = body.get("next_cursor")
            if not cursor:
                break
        self.show(
            products,
            lambda: [
                *(
                    f"{p.get('id', '?')}  {'active  ' if p.get('active', True) else 'inactive'}  "
                    f"{price(p.get('price'))}  {p.get('name', '')}"
                    for p in products
                ),
                count_of(len(products), "product"),
            ],
        )
        return 0

    def show_one(self) -> int:
        product = self.api.call("GET", self.path(), self.console, f"product {self.args.id}").json()
        self._print(product)
        return 0

    def create(self) -> int:
        body: dict[str, Any] = {"name": self.args.name, "price": _money(self.args.price, self.args.currency)}
        for name in ("description", "max_per_order", "category"):
            if getattr(self.args, name) is not None:
                body[name] = getattr(self.args, name)
        product = self.api.json_call(
            "POST", "/merchant/products", self.console, "create product", body, attempts=ONCE
        )
        self.show(
            product, lambda: [f"{product['id']}  {price(product.get('price'))}  {product.get('name', '')}"]
        )
        return 0

    def change(self) -> int:
        """A PATCH of the same fields again changes nothing more: safe to retry."""
        change = {name: value for name, value in vars(self.args).items() if name.startswith("set_")}
        body = {name.removeprefix("set_"): value for name, value in change.items() if value is not _UNSET}
        if self.args.price is not None or self.args.tiers is not None:
            currency = self.args.currency or self._currency()
            if self.args.price is not None:
                body["price"] = _money(self.args.price, currency)
            if self.args.tiers is not None:
                body["price_tiers"] = _tiers(self.args.tiers, currency)
        elif self.args.currency is not None:
            raise UsageError(f"{PROG} products change: --currency goes with --price or --tiers")
        if not body:
            raise UsageError(f"{PROG} products change: give at least one field to change (see --help)")
        self._print(self.api.json_call("PATCH", self.path(), self.console, f"change {self.args.id}", body))
        return 0

    def deactivate(self) -> int:
        """Buyers can no longer order it (within PRODUCT_CACHE_SECONDS); safe to retry."""
        body = {"active": False}
        self._print(
            self.api.json_call("PATCH", self.path(), self.console, f"deactivate {self.args.id}", body)
        )
        return 0

    def _currency(self) -> str:
        product = self.api.call("GET", self.path(), self.console, f"product {self.args.id}").json()
        return str(product["price"]["currency"])

    def _print(self, product: dict[str, Any]) -> None:
        def lines() -> list[str]:
            width = max(len(name) for name in SHOWN)
            out = []
            for name in SHOWN:
                value = product.get(name)
                if name == "price":
                    text = price(value).strip()
                elif name == "price_tiers":
                    text = ", ".join(
                        f"{t['min_quantity']}+: {price(t['price']).strip()}" for t in value or []
                    )
                else:
                    text = "-" if value in (None, "") else str(value)
                first, *rest = (text or "-").split("\n")
                out += [f"{name:<{width}}  {first}", *(f"{'':<{width}}  {line}" for line in rest)]
            return out

        self.show(product, lines)


_UNSET: Any = object()


def _money(amount: str, currency: str) -> dict[str, Any]:
    try:
        return from_major(amount, currency).model_dump()
    except ValueError as error:
        raise UsageError(f"{PROG}: price {amount!r} {currency}: {error}") from None


def _tier_list(text: str) -> list[tuple[int, str]]:
    """An argparse `type`: `2:30.00,5:28.00` (quantity:price each) as pairs; `none`: no tiers."""
    if text.strip().lower() == "none":
        return []
    tiers = []
    for part in text.split(","):
        quantity, _, amount = part.partition(":")
        if not quantity.strip().isdigit() or not amount.strip():
            raise argparse.ArgumentTypeError(
                f"--tiers takes QUANTITY:PRICE,... (2:30.00,5:28.00), not {part!r}"
            )
        tiers.append((int(quantity), amount.strip()))
    return tiers


def _tiers(pairs: list[tuple[int, str]], currency: str) -> list[dict[str, Any]]:
    return [{"min_quantity": quantity, "price": _money(amount, currency)} for quantity, amount in pairs]


def _count_or_none(text: str) -> int | None:
    if text.lower() == "none":
        return None
    return numeric(int, lambda n: n < 0, "must be 0 or more, or none: {text}")(text)


def _count(minimum: int) -> Any:
    return numeric(int, lambda n: n < minimum, f"must be {minimum} or more: {{text}}")


def register(commands: Any, where: Parser) -> None:
    products = commands.add_parser("products", help="the merchant's products")
    products.set_defaults(area=Products)
    actions = products.add_subparsers(
        dest="action", required=True, metavar="{list,show,create,change,deactivate}"
    )
    listed = actions.add_parser("list", parents=[where], help="every product: id, state, price, name")
    listed.add_argument("--active", type=yes_no, metavar="yes|no", help="only active (yes) or inactive (no)")
    listed.set_defaults(run=Products.list)

    one = Parser(add_help=False)
    one.add_argument("id", metavar="ID", help="the product (prd_…)")
    actions.add_parser("show", parents=[where, one], help="one product in full").set_defaults(
        run=Products.show_one
    )

    created = actions.add_parser(
        "create",
        parents=[where],
        help="a new product (sold from stock); sent once, never retried: a second POST would make a second",
    )
    created.add_argument("--name", required=True, help="as buyers see it")
    created.add_argument("--price", required=True, metavar="AMOUNT", help="in major units: 35.00")
    created.add_argument("--currency", default="CNY", help="ISO 4217 (default: %(default)s)")
    created.add_argument("--description", metavar="TEXT")
    created.add_argument("--max-per-order", dest="max_per_order", type=_count(1), metavar="N")
    created.add_argument("--category", metavar="TEXT", help="where the storefront lists it")
    created.set_defaults(run=Products.create)

    change = actions.add_parser(
        "change",
        parents=[where, one],
        help="change the fields given, nothing else (safe to run again)",
        description="Change the fields given (PATCH); a change that breaks a rule writes nothing.",
    )
    change.add_argument("--price", metavar="AMOUNT", help="in major units: 35.00")
    change.add_argument("--currency", help="of --price and --tiers (default: the product's)")
    change.add_argument(
        "--tiers",
        type=_tier_list,
        metavar="Q:PRICE,...",
        help="wholesale tiers: 2:30.00,5:28.00 (none: no tiers)",
    )
    for flag, kind, text in (
        ("--name", str, "as buyers see it"),
        ("--description", str, "what the product page says"),
        ("--instructions", str, "shown to the buyer with the codes"),
        ("--category", str, "where the storefront lists it (empty: none)"),
        ("--active", yes_no, "yes: on sale; no: not"),
        ("--email-codes", yes_no, "yes: the confirmation mail carries the codes"),
        ("--min-per-order", _count(1), "units an order takes at least"),
        ("--max-per-order", _count(1), "units an order takes at most (≤ 100)"),
        ("--daily-limit", _count_or_none, "units one e-mail may buy a day (none: no limit)"),
        ("--unpaid-limit", _count_or_none, "units one client may hold unpaid (none: the shop's default)"),
        ("--low-stock-threshold", _count(0), "stock.low at or below this (0: off)"),
    ):
        field = {"--daily-limit": "daily_limit_per_buyer", "--unpaid-limit": "unpaid_limit_per_client"}.get(
            flag, flag.removeprefix("--").replace("-", "_")
        )
        metavar = {yes_no: "yes|no", _count_or_none: "N|none", str: "TEXT"}.get(kind, "N")
        change.add_argument(flag, dest=f"set_{field}", type=kind, default=_UNSET, metavar=metavar, help=text)
    change.add_argument(
        "--when-undeliverable", dest="set_when_undeliverable", choices=POLICIES, default=_UNSET
    )
    change.set_defaults(run=Products.change)

    actions.add_parser(
        "deactivate", parents=[where, one], help="take it off sale (safe to run again)"
    ).set_defaults(run=Products.deactivate)
