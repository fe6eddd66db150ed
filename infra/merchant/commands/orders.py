"""`miaofa-merchant orders`: list (filters, cursor pages), show, refund, fulfil a manual order by hand,
export the listed orders as CSV.

Codes: the API hands an order's codes (audited) to `GET /merchant/orders/{id}` while DELIVERED, and
a manual order's fulfilment (a text, codes: what was delivered); `orders show` prints them only when
asked (--codes). The buyer's fields of a top-up or manual order are personal data, also in every
answer (each read audited): printed only with --buyer-input. The listing carries none of these, so
neither does the CSV."""

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.cli_support import Console, Parser, UsageError, count_of, numeric
from infra.merchant.api import PROG, quoted
from infra.merchant.commands import Command, one_stdin, price, private_output, read_input
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
        fields, fulfilment = order.pop("buyer_input", None), order.pop("fulfilment", None)
        if self.args.codes:
            order["items"] = [{"code": code} for code in codes]
            if fulfilment is not None:
                order["fulfilment"] = fulfilment
        if self.args.buyer_input and fields is not None:
            order["buyer_input"] = fields
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
        if self.args.buyer_input:
            width = max((len(name) for name in fields or {}), default=0)
            lines += (
                ["input", *(f"  {n:<{width}}  {v}" for n, v in fields.items())] if fields else ["input     -"]
            )
        elif fields:
            lines.append(
                f"input     {count_of(len(fields), 'field')} from the buyer (--buyer-input prints them; "
                f"each read is audited)"
            )
        if fulfilment is not None and self.args.codes:
            lines.append("fulfilled by hand")
            if fulfilment.get("text"):
                lines += [f"  {line}" for line in fulfilment["text"].split("\n")]
            codes += fulfilment.get("codes") or []  # a manual order's codes: it has no others
        elif fulfilment is not None:
            lines.append(f"fulfilled by hand: {_delivered(fulfilment)} (--codes prints it)")
        if self.args.codes:
            lines += ["codes", *(f"  {code}" for code in codes)]
        elif codes:
            lines.append(f"codes     {len(codes)} (--codes prints them; each read is audited)")
        self.console.print(*lines)
        return 0

    def refund(self) -> int:
        """Asking again changes nothing and answers the same refund id: safe to retry."""
        body: dict[str, Any] = {"reason": self.args.reason} if self.args.reason else {}
        if self.args.fraud:
            body["fraud"] = (
                True  # its payer, device, e-mail, client onto the learned block lists (docs/risk.md)
            )
        answer = self.api.json_call(
            "POST",
            f"/merchant/orders/{quoted(self.args.id)}/refund",
            self.console,
            f"refund {self.args.id}",
            body,
        )
        self.show(answer, lambda: [f"{answer['order_id']}  {answer['status']}  refund {answer['refund_id']}"])
        return 0

    def fulfil(self) -> int:
        """The API makes it idempotent (the same text and codes again get the same answer): safe to
        retry, and to run again."""
        args, command = self.args, f"{PROG} orders fulfil"
        one_stdin("orders fulfil", {"--text-file": args.text_file, "--codes-file": args.codes_file})
        body: dict[str, Any] = {}
        text = (
            args.text if args.text_file is None else read_input(args.text_file, self.console).rstrip("\r\n")
        )
        if text is not None:
            if not text.strip():
                raise UsageError(f"{command}: the text is empty")
            body["text"] = text
        codes = [*(args.code or []), *(_code_lines(args.codes_file, self.console) if args.codes_file else [])]
        if any(not code.strip() for code in codes):
            raise UsageError(f"{command}: a --code is blank")
        if codes:
            body["codes"] = codes
        if not body:
            raise UsageError(
                f"{command}: give what the buyer gets: --text, --text-file, --code or --codes-file"
            )
        answer = self.api.json_call(
            "POST", f"/merchant/orders/{quoted(args.id)}/fulfil", self.console, f"fulfil {args.id}", body
        )
        given = _delivered({"text": text, "codes": codes})
        self.show(answer, lambda: [f"{answer['order_id']}  {answer['status']}  fulfilled with {given}"])
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


def _delivered(fulfilment: dict[str, Any]) -> str:
    """What a manual order was fulfilled with, never the text or codes: `a text (31 characters) and 2 codes`."""
    text, codes = fulfilment.get("text"), fulfilment.get("codes") or []
    parts = [f"a text ({count_of(len(text), 'character')})"] if text else []
    parts += [count_of(len(codes), "code")] if codes else []
    return " and ".join(parts) or "nothing"


def _code_lines(name: str, console: Console) -> list[str]:
    """One code per line (a last line break is no blank code); a blank line is named, not sent."""
    lines = [line.removesuffix("\r") for line in read_input(name, console).split("\n")]
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise UsageError(
                f"{PROG}: {'stdin' if name == '-' else name} line {number} is blank: one code per line"
            )
    if not lines:
        raise UsageError(f"{PROG}: {'stdin' if name == '-' else name} holds no codes")
    return lines


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
    actions = orders.add_subparsers(dest="action", required=True, metavar="{list,show,refund,fulfil,export}")

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
    shown.add_argument(
        "--codes",
        action="store_true",
        help="print what it was delivered with too: its codes, a manual order's text (while DELIVERED)",
    )
    shown.add_argument(
        "--buyer-input",
        action="store_true",
        help="print the fields the buyer filled in (personal data: the API audits every read)",
    )
    shown.set_defaults(run=Orders.show_one)

    refund = actions.add_parser(
        "refund", parents=[where, one], help="refund a paid order through its provider (safe to run again)"
    )
    refund.add_argument("--reason", metavar="TEXT", help="kept with the refund (at most 200 characters)")
    refund.add_argument(
        "--fraud",
        action="store_true",
        help="the order was fraud: block its payer, device, e-mail and client address at this shop",
    )
    refund.set_defaults(run=Orders.refund)

    fulfil = actions.add_parser(
        "fulfil",
        parents=[where, one],
        help="deliver a paid manual order by hand: a text, codes, or both (safe to run again)",
        description="Deliver a paid manual order (fulfilments list) by hand: a text for the buyer, codes "
        "(one per unit), or both. The same text and codes again get the same answer; different ones, "
        "once delivered, are refused.",
    )
    text = fulfil.add_mutually_exclusive_group()
    text.add_argument("--text", metavar="TEXT", help="for the buyer (at most 5000 characters)")
    text.add_argument("--text-file", metavar="FILE", help="the text from a file (- : stdin)")
    fulfil.add_argument("--code", action="append", metavar="CODE", help="a code (again for each unit)")
    fulfil.add_argument("--codes-file", metavar="FILE", help="codes, one per line (- : stdin)")
    fulfil.set_defaults(run=Orders.fulfil)

    export = actions.add_parser(
        "export", parents=[where, filters], help="every order the filters list, as CSV (no codes)"
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (mode 0600)")
    export.set_defaults(run=Orders.export)
