"""`miaofa-merchant orders`: list (filters, cursor pages), show, refund, export the listed orders as CSV.

Codes: the API hands an order's codes (audited) to `GET /merchant/orders/{id}` while DELIVERED;
`orders show` prints them only when asked (--codes). The listing carries no codes, so neither does
the CSV."""

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.cli_support import Parser, UsageError, count_of, numeric
from infra.merchant.api import PROG, quoted
from infra.merchant.commands import Command, price, private_output
from shared.money import Money, to_major

STATUSES = (
    "PENDING_PAYMENT",
    "PAID",
    "IN_REVIEW",
    "DELIVERED",
    "EXPIRED",
    "REFUNDING",
    "REFUNDED",
    "CLAIMED",
    "REPLACED",
)
CSV_COLUMNS = (
    "order_id",
    "created_at",
    "status",
    "product_id",
    "quantity",
    "total",
    "currency",
    "email",
    "provider",
)


class Orders(Command):
    def filters(self) -> dict[str, str]:
        given = {
            "status": self.args.status,
            "product_id": self.args.product,
            "email": self.args.email,
            "from": self.args.since,
            "to": self.args.until,
        }
        return {name: value for name, value in given.items() if value is not None}

    def page(self, cursor: str | None, limit: int) -> dict[str, Any]:
        query = {**self.filters(), "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        body = self.api.call("GET", "/merchant/orders", self.console, "orders", query=query).json()
        return body if isinstance(body, dict) else {"orders": [], "next_cursor": None}

    def pages(self, limit: int) -> Any:
        cursor = None
        while True:
            body = self.page(cursor, limit)
            yield from body.get("orders", [])
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def list(self) -> int:
        if self.args.all:
            listed, cursor = list(self.pages(100)), None
        else:
            body = self.page(self.args.cursor, self.args.limit)
            listed, cursor = body.get("orders", []), body.get("next_cursor")
        if self.args.json:
            self.console.json({"orders": listed, "next_cursor": cursor})
            return 0
        self.console.print(
            *(
                f"{o['order_id']}  {o['created_at'][:19]}  {o['status']:<15}  {o['product_id']}  "
                f"x{o['quantity']:<3} {price(o['total'])}  {o['email']}"
                for o in listed
            ),
            count_of(len(listed), "order"),
        )
        if cursor:
            self.console.note(f"more follow: --cursor {cursor} (or --all)")
        return 0

    def show_one(self) -> int:
        order = self.api.call(
            "GET", f"/merchant/orders/{quoted(self.args.id)}", self.console, f"order {self.args.id}"
        ).json()
        codes = [item["code"] for item in order.pop("items", None) or []]
        if self.args.codes:
            order["items"] = [{"code": code} for code in codes]
        if self.args.json:
            self.console.json(order)
            return 0
        payment, refund = order.get("payment"), order.get("refund")
        lines = [
            f"order     {order['order_id']}",
            f"status    {order['status']}",
            f"product   {order['product_id']} x {order['quantity']}",
            f"total     {price(order['total']).strip()}",
            f"email     {order['email']}",
            f"created   {order['created_at']}",
            f"payment   {payment['provider']} {payment['payment_id']}" if payment else "payment   -",
            f"refund    {refund['refund_id']}" + (f" ({refund['error']})" if refund.get("error") else "")
            if refund
            else "refund    -",
            f"history   {'intact' if order.get('history_intact') else 'BROKEN: the hash chain does not hold'}",
            *(f"  {event['at']}  {event['type']}" for event in order.get("events", [])),
        ]
        if self.args.codes:
            lines += ["codes", *(f"  {code}" for code in codes)]
        elif codes:
            lines.append(f"codes     {len(codes)} (--codes prints them; each read is audited)")
        self.console.print(*lines)
        return 0

    def refund(self) -> int:
        """Asking again changes nothing and answers the same refund id: safe to retry."""
        body = {"reason": self.args.reason} if self.args.reason else {}
        answer = self.api.json_call(
            "POST",
            f"/merchant/orders/{quoted(self.args.id)}/refund",
            self.console,
            f"refund {self.args.id}",
            body,
        )
        self.show(answer, lambda: [f"{answer['order_id']}  {answer['status']}  refund {answer['refund_id']}"])
        return 0

    def export(self) -> int:
        if self.args.json and self.args.output is None:
            raise UsageError(
                f"{PROG} orders export: --json needs -o FILE (without it the CSV goes to stdout)"
            )
        count = 0
        with private_output(self.args.output, self.console) as stream:
            writer = csv.writer(stream)
            writer.writerow(CSV_COLUMNS)
            for order in self.pages(100):
                writer.writerow(_row(order))
                count += 1
        summary = {"orders": count, "file": str(self.args.output) if self.args.output else None}
        if self.args.json:
            self.console.json(summary)
        else:
            where = f" to {self.args.output}" if self.args.output is not None else ""
            self.console.note(f"exported {count_of(count, 'order')}{where}")
        return 0


def _row(order: dict[str, Any]) -> list[str]:
    total = Money.model_validate(order["total"])
    return [
        order["order_id"],
        order["created_at"],
        order["status"],
        order["product_id"],
        str(order["quantity"]),
        str(to_major(total)),
        total.currency,
        _cell(order["email"]),
        order["provider"],
    ]


def _cell(text: str) -> str:
    """A buyer's text as a spreadsheet shows it, never as a formula it runs: an e-mail may begin
    with `=`, `+`, `-` or `@` (`=cmd|…@example.com` is a valid address); such a cell is quoted with `'`."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _time(text: str) -> str:
    """An RFC 3339 time with an offset, or a date (midnight UTC)."""
    try:
        parsed = datetime.fromisoformat(text if "T" in text or " " in text else f"{text}T00:00:00+00:00")
    except ValueError:
        raise UsageError(f"{PROG}: not a time: {text!r} (2026-05-01 or 2026-05-01T08:00:00+08:00)") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{PROG}: {text!r} has no offset (add +00:00, or +08:00, ...)")
    return parsed.isoformat()


def register(commands: Any, where: Parser) -> None:
    orders = commands.add_parser("orders", help="the merchant's orders")
    orders.set_defaults(area=Orders)
    actions = orders.add_subparsers(dest="action", required=True, metavar="{list,show,refund,export}")

    filters = Parser(add_help=False)
    filters.add_argument("--status", choices=STATUSES, type=str.upper)
    filters.add_argument("--product", metavar="ID", help="one product's (prd_…)")
    filters.add_argument("--email", metavar="ADDRESS", help="the buyer's (any case)")
    filters.add_argument("--from", dest="since", type=_time, metavar="TIME", help="created at or after")
    filters.add_argument("--to", dest="until", type=_time, metavar="TIME", help="created before")

    listed = actions.add_parser("list", parents=[where, filters], help="a page of orders, newest first")
    listed.add_argument(
        "--limit",
        type=numeric(int, lambda n: not 1 <= n <= 100, "must be from 1 to 100: {text}"),
        default=50,
        metavar="N",
        help="orders per page (default: %(default)s)",
    )
    listed.add_argument("--cursor", help="the page after this one (as the last page said)")
    listed.add_argument("--all", action="store_true", help="every page")
    listed.set_defaults(run=Orders.list)

    one = Parser(add_help=False)
    one.add_argument("id", metavar="ID", help="the order (ord_…)")
    shown = actions.add_parser("show", parents=[where, one], help="one order: payment, refund, history")
    shown.add_argument("--codes", action="store_true", help="print its codes too (while DELIVERED)")
    shown.set_defaults(run=Orders.show_one)

    refund = actions.add_parser(
        "refund", parents=[where, one], help="refund a paid order through its provider (safe to run again)"
    )
    refund.add_argument("--reason", metavar="TEXT", help="kept with the refund (at most 200 characters)")
    refund.set_defaults(run=Orders.refund)

    export = actions.add_parser(
        "export", parents=[where, filters], help="every order the filters list, as CSV (no codes)"
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (mode 0600)")
    export.set_defaults(run=Orders.export)
