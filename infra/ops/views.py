"""What the CLI prints: dead letters joined with their orders, as text lines or JSON-ready dicts.

Only what an operator needs to decide: never a code, an access token or its hash, a payment
secret or the buyer's e-mail.
"""

from datetime import datetime
from typing import Any

from infra.ops.dlq import DeadLetter, body_for_display
from shared.orders import Order

NOT_DELIVERY = "(not a delivery message)"
UNKNOWN_ORDER = "(unknown order)"
LIST_COLUMNS = "{:<36}  {:<24}  {:>7}  {:>8}  {:<15}  {}"


def age(seconds: float) -> str:
    """A short age: 45s, 3m12s, 2h05m, 4d03h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def letter_row(letter: DeadLetter, order: Order | None, now: datetime) -> dict[str, Any]:
    """One dead letter and its order's delivery state, as `dlq list --json` prints it."""
    return {
        "message_id": letter.message_id,
        "order_id": letter.order_id,
        "sent_at": _when(letter.sent_at),
        "age_seconds": int((now - letter.sent_at).total_seconds()),
        "receive_count": letter.receive_count,
        "status": order.status.value if order else None,
        "delivery_error": order.delivery_error if order else None,
        "delivery_failures": order.delivery_failures if order else None,
        "redrives": order.redrives if order else None,
    }


def list_header() -> str:
    return LIST_COLUMNS.format("MESSAGE ID", "ORDER", "AGE", "RECEIVES", "STATUS", "LAST DELIVERY ERROR")


def list_line(row: dict[str, Any]) -> str:
    if row["order_id"] is None:
        order, status = NOT_DELIVERY, "-"
    else:
        order, status = row["order_id"], row["status"] or UNKNOWN_ORDER
    return LIST_COLUMNS.format(
        row["message_id"],
        order,
        age(row["age_seconds"]),
        row["receive_count"],
        status,
        row["delivery_error"] or "-",
    )


def letter_details(letter: DeadLetter, order: Order | None, now: datetime) -> dict[str, Any]:
    """The full picture of one dead letter, as `dlq show --json` prints it."""
    details: dict[str, Any] = {
        "message_id": letter.message_id,
        "body": body_for_display(letter.body),
        "sent_at": _when(letter.sent_at),
        "age_seconds": int((now - letter.sent_at).total_seconds()),
        "first_received_at": _when(letter.first_received_at),
        "receive_count": letter.receive_count,
        "order_id": letter.order_id,
        "order": None,
    }
    if order is not None:
        details["order"] = {
            "status": order.status.value,
            "product_id": order.product_id,
            "quantity": order.quantity,
            "total": {"amount": order.total.amount, "currency": order.total.currency},
            "created_at": _when(order.created_at),
            "payment_id": order.payment.payment_id if order.payment else None,
            "delivery_error": order.delivery_error,
            "delivery_failures": order.delivery_failures,
            "redrives": order.redrives,
            "history": [{"type": event.type, "at": _when(event.at)} for event in order.history],
        }
    return details


def details_lines(details: dict[str, Any]) -> list[str]:
    lines = [
        f"message            {details['message_id']}",
        f"body               {details['body']}",
        f"sent               {details['sent_at']} ({age(details['age_seconds'])} ago)",
        f"first received     {details['first_received_at'] or '-'}",
        f"receive count      {details['receive_count']}",
    ]
    if details["order_id"] is None:
        return [*lines, f"order              {NOT_DELIVERY}"]
    order = details["order"]
    if order is None:
        return [*lines, f"order              {details['order_id']} {UNKNOWN_ORDER}"]
    total = order["total"]
    failures = order["delivery_failures"]
    lines += [
        f"order              {details['order_id']}",
        f"status             {order['status']}",
        f"product            {order['product_id']} x {order['quantity']}",
        f"total              {total['amount']} {total['currency']} (minor units)",
        f"created            {order['created_at']}",
        f"payment            {order['payment_id'] or '-'}",
        f"delivery error     {order['delivery_error'] or '-'}"
        + (f" ({failures} failed attempts)" if failures else ""),
        f"redrives           {order['redrives']}",
        "history",
    ]
    return lines + [f"  {event['at']}  {event['type']}" for event in order["history"]]


def report_lines(report: dict[str, Any]) -> list[str]:
    """A reconcile report: its time, then its figures as indented `key: value` lines."""
    lines = [f"reconcile report at {report.get('at', '?')}"]
    lines += _nested({k: v for k, v in report.items() if k != "at"}, indent=1)
    return lines


def _nested(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        label = f"{pad}{key}:" if isinstance(value, dict) else f"{pad}-"
        if isinstance(item, dict | list) and item:
            lines.append(label)
            lines += _nested(item, indent + 1)
        else:
            lines.append(f"{label} {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return "-" if value is None else str(value)
