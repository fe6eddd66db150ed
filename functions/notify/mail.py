"""Buyers' mail, written and sent through SES: the confirmation of a delivered order, and the
order look-up. In Chinese and English, one after the other (the buyer's language is not stored).

A mail carries magic links (shared/links.py) to the order pages, never an access token; the codes
themselves only when the product says so (`email_codes`). Nothing of a mail goes to the logs.

Merchant text (a product's name) goes into a mail folded onto the line of ours that quotes it, and a
Subject is always one line: a name with line breaks cannot add a paragraph that looks like ours (a
fake link, a fake code) or a second header line."""

import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from functools import cache

from shared import aws, links
from shared.fulfilment import open_fulfilment
from shared.mail import MailRequest
from shared.money import display
from shared.orders import Order, Status
from shared.products import Product
from shared.settings import settings
from shared.store.merchants import MerchantStore
from shared.store.orders import OrderStore, buyer_of
from shared.store.products import ProductStore
from shared.store.stock.allocation import Allocation

LOOKUP_ORDERS = 20  # the newest orders a look-up mail lists
ZH_STATUS = {
    Status.PENDING_PAYMENT: "等待付款",
    Status.PAID: "已付款",
    Status.IN_REVIEW: "审核中",
    Status.DELIVERED: "已发货",
    Status.EXPIRED: "已过期",
    Status.REFUNDING: "退款中",
    Status.REFUNDED: "已退款",
    Status.CLAIMED: "售后处理中",
    Status.REPLACED: "已更换",
}


class Mailed(Enum):
    SENT = "sent"
    NOTHING = "nothing to send"  # a look-up for an address without orders, an order gone
    OFF = "mail is off"  # no MAIL_FROM


# Line and paragraph separators (LF, CR, VT, FF, NEL, U+2028, U+2029...) and other controls, and the
# bidirectional controls that make text show in another order than it is written.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Mail:
    def __init__(self, to: str, subject: str, text: str) -> None:
        self.to, self.subject, self.text = to, one_line(subject), text


def one_line(text: str) -> str:
    """Text as part of one line: every line break, control character and run of spaces is one space."""
    kept = (" " if unicodedata.category(c) in _BREAKING or c in _BIDI else c for c in text)
    return " ".join("".join(kept).split())


@cache
def _ses():  # type: ignore[no-untyped-def]
    return aws.client("ses")


def send(
    request: MailRequest,
    orders: OrderStore,
    products: ProductStore,
    merchants: MerchantStore,
    allocation: Allocation,
    now: datetime,
    deliver: Callable[[Mail, str], None] | None = None,
) -> Mailed:
    config = settings()
    if not config.mail_from:
        return Mailed.OFF
    if request.mail == "order":
        mail = order_mail(str(request.order_id), orders, products, merchants, allocation, now)
    else:
        mail = lookup_mail(str(request.email), orders, products, now, request.order_id)
    if mail is None:
        return Mailed.NOTHING
    (deliver or _send_ses)(mail, config.mail_from)
    return Mailed.SENT


def _send_ses(mail: Mail, sender: str) -> None:
    _ses().send_email(
        Source=sender,
        Destination={"ToAddresses": [mail.to]},
        Message={
            "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
            "Body": {"Text": {"Data": mail.text, "Charset": "UTF-8"}},
        },
    )


def _link(order_id: str, now: datetime) -> str:
    config = settings()
    return links.order_url(config.public_base_url, order_id, now, config.order_token_secret)


def _name(product: Product | None) -> str:
    """The product's name (the merchant's text) folded onto the line that quotes it."""
    return one_line(product.name) if product is not None else "—"


def order_mail(
    order_id: str,
    orders: OrderStore,
    products: ProductStore,
    merchants: MerchantStore,
    allocation: Allocation,
    now: datetime,
) -> Mail | None:
    order = orders.get(order_id)
    if order is None or order.status != Status.DELIVERED:
        return None
    product = products.recent_product(order.product_id)
    name, total, link = _name(product), display(order.total), _link(order.order_id, now)
    text = [
        f"您的订单 {order.order_id}（{name}，数量 {order.quantity}，{total}）已发货。",
        f"查看卡密：{link}",
        "",
        f"Your order {order.order_id} ({name}, quantity {order.quantity}, {total}) is delivered.",
        f"See your codes: {link}",
        "",
    ]
    if product is not None and product.email_codes:
        cipher = merchants.cipher(order.merchant_id)
        if order.delivery == "stock":
            codes = allocation.read_codes(order.product_id, order.slots, order.order_id, cipher)
        else:  # sealed on the order: generated codes, license keys, a manual order's codes
            codes = fulfilment.codes if (fulfilment := open_fulfilment(order, cipher)) is not None else []
        text += ["卡密 / Codes:", *codes, ""]
    text += _footer()
    return Mail(order.email, f"订单已发货 / Your order is delivered: {name}", "\n".join(text))


def lookup_mail(
    email: str, orders: OrderStore, products: ProductStore, now: datetime, order_id: str | None = None
) -> Mail | None:
    """The address's newest orders, or only `order_id` if it was placed with this address (None: no
    mail, so a number and an address that do not belong together learn nothing)."""
    ids = [order_id] if order_id else orders.of_buyer(email, LOOKUP_ORDERS)
    found = [
        o for o in (orders.get(i) for i in ids) if o is not None and buyer_of(o.email) == buyer_of(email)
    ]
    if not found:
        return None
    names = {o.product_id: _name(products.recent_product(o.product_id)) for o in found}
    text = [
        f"您在本店的订单（最近 {len(found)} 个）/ Your orders in this shop (the newest {len(found)}):",
        "",
        *_listing(found, names, now),
        "如果不是您本人申请的查询，可以忽略这封邮件。/ If you did not ask for this, ignore this mail.",
        *_footer(),
    ]
    return Mail(email, "您的订单 / Your orders", "\n".join(text))  # to the address asked about


def _listing(found: Sequence[Order], names: dict[str, str], now: datetime) -> list[str]:
    lines = []
    for order in found:
        day = order.created_at.date().isoformat()
        status = f"{ZH_STATUS.get(order.status, order.status.value)} / {order.status.value}"
        lines += [
            f"- {order.order_id} · {names[order.product_id]} · {day} · {status}",
            f"  {_link(order.order_id, now)}",
            "",
        ]
    return lines


def _footer() -> list[str]:
    days = links.LIFETIME.days
    return [f"链接 {days} 天内有效，请勿转发。/ The links work for {days} days; do not forward them."]
