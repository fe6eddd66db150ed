"""`miaofa-merchant products`: list, show, create, change (PATCH: only the fields given), deactivate.

A product is delivered from stock (codes imported), by top-up (the merchant's upstream credits the
account the buyer names: `--upstream`, `--sku`), by hand (`--promise-minutes`, `--deadline-minutes`),
with a code made per unit from a pattern (`--pattern`, `--cap`) or with a signed license key per unit
(`--entitlement`, `--max-machines`, `--valid-days`, `--license-prefix`; docs/licenses.md);
`--buyer-input FILE` declares the fields a buyer fills in (a JSON list, checked as the API checks it)."""

import argparse
import json
from functools import cached_property
from typing import Any

from pydantic import TypeAdapter, ValidationError

from infra.cli_support import Console, Parser, Refused, UsageError, count_of, numeric
from infra.merchant.api import ONCE, PROG, quoted
from infra.merchant.commands import Command, price, read_input, yes_no
from shared.buyer_input import InputField, check_fields
from shared.money import from_major

POLICIES = ("refund", "hold")
REVIEW_POLICIES = ("refund", "deliver")  # when a risk review is not decided in time (docs/risk.md)
DELIVERIES = ("stock", "topup", "manual", "generated", "license")
# Each made-per-order delivery's terms: the API's field -> its flag. `cap` and `valid_days` take `none`.
GENERATED_FLAGS = {"pattern": "--pattern", "cap": "--cap"}
LICENSE_FLAGS = {
    "entitlements": "--entitlement",
    "max_machines": "--max-machines",
    "valid_days": "--valid-days",
    "prefix": "--license-prefix",
}
NULLABLE_TERMS = ("cap", "valid_days")  # left out: _UNSET; `none`: None (no cap, never expires)
NOT_FOUND = 404
# Shown by `products show`, in this order (the rest of the answer is in --json).
SHOWN = (
    "id",
    "name",
    "active",
    "delivery",
    "price",
    "price_tiers",
    "min_per_order",
    "max_per_order",
    "daily_limit_per_buyer",
    "unpaid_limit_per_client",
    "low_stock_threshold",
    "when_undeliverable",
    "review_deadline_minutes",
    "when_review_expires",
    "email_codes",
    "sales_per_code",
    "category",
    "description",
    "instructions",
    "buyer_input",
)
_FIELDS = TypeAdapter(list[InputField])


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
        body |= self._delivery_terms()
        product = self.api.json_call(
            "POST", "/merchant/products", self.console, "create product", body, attempts=ONCE
        )
        delivery = product.get("delivery", "stock")
        self.show(
            product,
            lambda: [
                f"{product['id']}  {price(product.get('price'))}  {product.get('name', '')}"
                + ("" if delivery == "stock" else f"  ({delivery})")
            ],
        )
        if self.args.upstream is not None:
            self._note_if_unregistered(self.args.upstream)
        self._note_example(product)
        return 0

    def _note_example(self, product: dict[str, Any]) -> None:
        """A generated product's example code, so a merchant sees what its pattern makes (`C\\ARD` vs `CARD`)."""
        if product.get("example"):
            self.console.note(f"example code: {product['example']} (made from the pattern; never sold)")

    def change(self) -> int:
        """A PATCH of the same fields again changes nothing more: safe to retry."""
        if self.args.delivery is not None:
            raise UsageError(
                f"{PROG} products change: a product's delivery never changes once it exists; "
                f"create another product (products create --delivery {self.args.delivery})"
            )
        if self.args.currency is not None and self.args.price is None and self.args.tiers is None:
            raise UsageError(f"{PROG} products change: --currency goes with --price or --tiers")
        change = {name: value for name, value in vars(self.args).items() if name.startswith("set_")}
        body = {name.removeprefix("set_"): value for name, value in change.items() if value is not _UNSET}
        body |= self._changed_terms()
        if self.args.price is not None or self.args.tiers is not None:
            currency = self.args.currency or self.current["price"]["currency"]
            if self.args.price is not None:
                body["price"] = _money(self.args.price, currency)
            if self.args.tiers is not None:
                body["price_tiers"] = _tiers(self.args.tiers, currency)
        if not body:
            raise UsageError(f"{PROG} products change: give at least one field to change (see --help)")
        changed = self.api.json_call("PATCH", self.path(), self.console, f"change {self.args.id}", body)
        self._print(changed)
        self._note_example(changed)
        if self.args.upstream is not None:
            self._note_if_unregistered(self.args.upstream)
        return 0

    def deactivate(self) -> int:
        """Buyers can no longer order it (within PRODUCT_CACHE_SECONDS); safe to retry."""
        body = {"active": False}
        self._print(
            self.api.json_call("PATCH", self.path(), self.console, f"deactivate {self.args.id}", body)
        )
        return 0

    @cached_property
    def current(self) -> dict[str, Any]:
        """The product as it is now (read once), for what a change keeps."""
        product: dict[str, Any] = self.api.call(
            "GET", self.path(), self.console, f"product {self.args.id}"
        ).json()
        return product

    def _delivery_terms(self) -> dict[str, Any]:
        """A new product's delivery, its terms and the buyer's fields, as the API takes them; a
        combination the API would refuse is a usage error, before anything is sent."""
        args, command = self.args, f"{PROG} products create"
        topup = {"upstream": args.upstream, "sku": args.sku}
        manual = {"promise_minutes": args.promise_minutes, "deadline_minutes": args.deadline_minutes}
        if args.delivery != "topup" and any(v is not None for v in topup.values()):
            raise UsageError(f"{command}: --upstream and --sku go with --delivery topup")
        if args.delivery != "manual" and any(v is not None for v in manual.values()):
            raise UsageError(f"{command}: --promise-minutes and --deadline-minutes go with --delivery manual")
        made = {"generated": GENERATED_FLAGS, "license": LICENSE_FLAGS}
        for mode, flags in made.items():
            if args.delivery != mode and _given_terms(args, flags):
                raise UsageError(f"{command}: {', '.join(flags.values())} go with --delivery {mode}")
        body: dict[str, Any] = {"delivery": args.delivery}
        if args.delivery == "generated":
            if args.pattern is None:
                raise UsageError(f"{command}: --delivery generated needs --pattern, e.g. GIFT-XXXX-XXXX-9999")
            body["generated"] = _given_terms(args, GENERATED_FLAGS)
        if args.delivery == "license":
            if args.max_machines is None:
                raise UsageError(
                    f"{command}: --delivery license needs --max-machines N (machines per license)"
                )
            body["license"] = _given_terms(args, LICENSE_FLAGS)
        if args.delivery == "topup":
            if None in topup.values():
                raise UsageError(
                    f"{command}: --delivery topup needs --upstream NAME and --sku SKU (the supplier's code)"
                )
            if args.buyer_input is None:
                raise UsageError(
                    f"{command}: --delivery topup needs --buyer-input FILE: the fields naming the account "
                    f"the upstream credits"
                )
            body["topup"] = topup
        if args.delivery == "manual":
            body["manual"] = _manual(command, {n: v for n, v in manual.items() if v is not None})
        if args.buyer_input is not None:
            body["buyer_input"] = buyer_fields(args.buyer_input, self.console)
        return body

    def _changed_terms(self) -> dict[str, Any]:
        """The delivery terms and buyer fields given to a change. `topup` and `manual` are changed
        whole, so what is not given is kept from the product as it is (one read)."""
        args, command = self.args, f"{PROG} products change"
        _manual(command, {"promise_minutes": args.promise_minutes, "deadline_minutes": args.deadline_minutes})
        body: dict[str, Any] = {}
        if args.buyer_input is not None:
            body["buyer_input"] = buyer_fields(args.buyer_input, self.console)
        for terms, flags in (
            ("topup", {"upstream": "--upstream", "sku": "--sku"}),
            ("manual", {"promise_minutes": "--promise-minutes", "deadline_minutes": "--deadline-minutes"}),
            ("generated", GENERATED_FLAGS),
            ("license", LICENSE_FLAGS),
        ):
            given = _given_terms(args, flags)
            if not given:
                continue
            product = self.current
            if product.get("delivery") != terms or not isinstance(product.get(terms), dict):
                raise UsageError(
                    f"{command}: {' and '.join(flags.values())} are for a {terms} product; "
                    f"{args.id} is delivered by {product.get('delivery', '?')}"
                )
            body[terms] = {**product[terms], **given}
        if "manual" in body:
            body["manual"] = _manual(command, body["manual"])
        return body

    def _note_if_unregistered(self, upstream: str) -> None:
        """A top-up product whose upstream is not registered is on sale, but no order of it can be
        delivered: say so (a hint only, so a failure to ask is not the command's)."""
        try:
            reply = self.api.call(
                "GET",
                f"/merchant/upstreams/{quoted(upstream)}",
                self.console,
                f"upstream {upstream}",
                attempts=ONCE,
                answered={NOT_FOUND},
            )
        except Refused:
            return
        if reply.status == NOT_FOUND:
            self.console.note(
                f"note: no upstream {upstream!r} is registered: its orders wait (then follow the product's "
                f"when_undeliverable policy) until `{PROG} upstreams set {upstream} URL`"
            )

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
                elif name == "delivery":
                    text = _delivery(product)
                elif name == "buyer_input":
                    width_of_names = max((len(str(f.get("name"))) for f in value or []), default=0)
                    text = "\n".join(_field(f, width_of_names) for f in value or [])
                else:
                    text = "-" if value in (None, "") else str(value)
                first, *rest = (text or "-").split("\n")
                out += [f"{name:<{width}}  {first}", *(f"{'':<{width}}  {line}" for line in rest)]
            return out

        self.show(product, lines)


_UNSET: Any = object()


def buyer_fields(name: str, console: Console) -> list[Any]:
    """The fields a buyer fills in, from a JSON file (`-`: stdin): sent as written, once they pass
    the API's own checks (an error names the field, 1-based, and what is wrong)."""
    where = "stdin" if name == "-" else name
    try:
        fields = json.loads(read_input(name, console))
    except ValueError as error:
        raise UsageError(f"{PROG}: {where} is not JSON: {error}") from None
    if not isinstance(fields, list):
        raise UsageError(
            f'{PROG}: {where} must hold a JSON list of fields: [{{"name": "uid", "label": {{"zh-CN": "…", '
            f'"en": "…"}}, "type": "text"}}, …]'
        )
    try:
        checked = _FIELDS.validate_python(fields)
    except ValidationError as error:
        problem = error.errors()[0]
        number, *inside = problem["loc"]
        given = fields[int(number)]
        named = given.get("name") if isinstance(given, dict) else None
        what = f"field {int(number) + 1}" + (f" ({named})" if isinstance(named, str) else "")
        where_in = ".".join(str(part) for part in inside)
        raise UsageError(
            f"{PROG}: {where}: {what}: {where_in + ': ' if where_in else ''}{problem['msg']}"
        ) from None
    if problem_text := check_fields(tuple(checked)):
        raise UsageError(f"{PROG}: {where}: {problem_text}")
    return fields


def _given_terms(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    """The terms whose flags were given, by the API's names (`none` for a cap or validity: null)."""
    given = {}
    for name in flags:
        value = getattr(args, name)
        if value is not (_UNSET if name in NULLABLE_TERMS else None):
            given[name] = value
    return given


def _manual(command: str, terms: dict[str, Any]) -> dict[str, Any]:
    promise, deadline = terms.get("promise_minutes"), terms.get("deadline_minutes")
    if promise is not None and deadline is not None and deadline < promise:
        raise UsageError(
            f"{command}: --deadline-minutes ({deadline}) must not be shorter than --promise-minutes "
            f"({promise}): the deadline is when the product's policy takes over"
        )
    return terms


def _delivery(product: dict[str, Any]) -> str:
    delivery, topup, manual = product.get("delivery", "stock"), product.get("topup"), product.get("manual")
    if delivery == "topup" and isinstance(topup, dict):
        return f"topup: upstream {topup.get('upstream')}, SKU {topup.get('sku')}"
    if delivery == "manual" and isinstance(manual, dict):
        return (
            f"manual: promised within {manual.get('promise_minutes')} min, "
            f"its when_undeliverable policy after {manual.get('deadline_minutes')} min"
        )
    made, terms = product.get("generated"), product.get("license")
    if delivery == "generated" and isinstance(made, dict):
        cap = made.get("cap")
        return f"generated: pattern {made.get('pattern')}, " + (f"at most {cap} codes" if cap else "no cap")
    if delivery == "license" and isinstance(terms, dict):
        days = terms.get("valid_days")
        return (
            f"license: {terms.get('prefix')}-…, {', '.join(terms.get('entitlements') or []) or 'no entitlements'}, "
            f"{terms.get('max_machines')} machines, " + (f"valid {days} days" if days else "never expires")
        )
    return str(delivery)


def _field(field: dict[str, Any], width: int) -> str:
    """One field a buyer fills in: `uid  number, required, asked twice, ≤ 20 characters  游戏 UID / Game UID`."""
    traits = [
        str(field.get("type", "text")),
        "required" if field.get("required", True) else "optional",
        *(["asked twice"] if field.get("confirm") else []),
        *([f"pattern {field['pattern']}"] if field.get("pattern") else []),
        *([f"one of {' | '.join(field['options'])}"] if field.get("options") else []),
        *(
            [f"≤ {field['max_length']} characters"]
            if field.get("max_length") and not field.get("options")
            else []
        ),
    ]
    label = field.get("label") or {}
    name = str(field.get("name"))
    return f"{name:<{width}}  {', '.join(traits)}  {label.get('zh-CN', '')} / {label.get('en', '')}"


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
        help="a new product; sent once, never retried: a second POST would make a second",
        description="A new product, delivered from stock (codes you import), by top-up (your upstream "
        "credits the buyer's account: --upstream, --sku, --buyer-input), by hand (--promise-minutes, "
        "--deadline-minutes), with a code made per unit (--pattern, --cap) or with a signed license key "
        "per unit (--entitlement, --max-machines, --valid-days, --license-prefix).",
    )
    created.add_argument("--name", required=True, help="as buyers see it")
    created.add_argument("--price", required=True, metavar="AMOUNT", help="in major units: 35.00")
    created.add_argument("--currency", default="CNY", help="ISO 4217 (default: %(default)s)")
    created.add_argument("--description", metavar="TEXT")
    created.add_argument("--max-per-order", dest="max_per_order", type=_count(1), metavar="N")
    created.add_argument("--category", metavar="TEXT", help="where the storefront lists it")
    created.add_argument(
        "--delivery",
        choices=DELIVERIES,
        default="stock",
        help="how orders are delivered (default: %(default)s)",
    )
    _add_delivery_terms(created)
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
        ("--review-deadline-minutes", _count(1), "how long a risk review waits for you (default 1440)"),
    ):
        field = {"--daily-limit": "daily_limit_per_buyer", "--unpaid-limit": "unpaid_limit_per_client"}.get(
            flag, flag.removeprefix("--").replace("-", "_")
        )
        metavar = {yes_no: "yes|no", _count_or_none: "N|none", str: "TEXT"}.get(kind, "N")
        change.add_argument(flag, dest=f"set_{field}", type=kind, default=_UNSET, metavar=metavar, help=text)
    change.add_argument(
        "--when-undeliverable", dest="set_when_undeliverable", choices=POLICIES, default=_UNSET
    )
    change.add_argument(
        "--when-review-expires",
        dest="set_when_review_expires",
        choices=REVIEW_POLICIES,
        default=_UNSET,
        help="a risk review not decided by its deadline: refund it (the default) or deliver it",
    )
    _add_delivery_terms(change)
    change.add_argument("--delivery", help=argparse.SUPPRESS)  # never changes: said so, not "unrecognized"
    change.set_defaults(run=Products.change)

    actions.add_parser(
        "deactivate", parents=[where, one], help="take it off sale (safe to run again)"
    ).set_defaults(run=Products.deactivate)


def _add_delivery_terms(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--upstream", metavar="NAME", help="topup: the upstream that credits it (upstreams set)"
    )
    parser.add_argument("--sku", metavar="SKU", help="topup: the supplier's code for the product")
    parser.add_argument(
        "--promise-minutes",
        type=_count(1),
        metavar="N",
        help="manual: 'usually within N minutes', as buyers are told",
    )
    parser.add_argument(
        "--deadline-minutes",
        type=_count(1),
        metavar="N",
        help="manual: minutes after payment when the when_undeliverable policy (refund or hold) takes over",
    )
    parser.add_argument(
        "--pattern",
        metavar="PATTERN",
        help="generated: X letter or digit, A letter, 9 digit, \\c the character c (GIFT-XXXX-XXXX-9999)",
    )
    parser.add_argument(
        "--cap",
        type=_count_or_none,
        default=_UNSET,
        metavar="N|none",
        help="generated: at most N codes ever made (none: no cap)",
    )
    parser.add_argument(
        "--entitlement",
        dest="entitlements",
        action="append",
        metavar="NAME",
        help="license: what it grants (repeat for each: --entitlement pro --entitlement updates:2027)",
    )
    parser.add_argument(
        "--max-machines", dest="max_machines", type=_count(1), metavar="N", help="license: machines at once"
    )
    parser.add_argument(
        "--valid-days",
        dest="valid_days",
        type=_count_or_none,
        default=_UNSET,
        metavar="N|none",
        help="license: days from issue until it expires (none: never)",
    )
    parser.add_argument(
        "--license-prefix", dest="prefix", metavar="PREFIX", help="license: its text's prefix (default LIC)"
    )
    parser.add_argument(
        "--buyer-input",
        metavar="FILE",
        help="the fields a buyer fills in: a JSON list as docs/API.md's buyer_input (- : stdin)",
    )
