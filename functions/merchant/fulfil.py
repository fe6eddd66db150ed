"""Manual delivery: the merchant's queue of paid orders waiting for it, and fulfilling one by hand.

Fulfilling is one conditional write (PAID -> DELIVERED, the delivery sealed on the order). A retried
request whose first answer was lost finds the order DELIVERED with the same delivery and answers as
the first would have; a different delivery for an order already fulfilled is refused (409)."""

from datetime import datetime

from pydantic import BaseModel

from functions.merchant.orders import owned_order
from shared import queues
from shared.errors import StateConflict
from shared.fulfilment import Fulfilment, open_fulfilment, seal_fulfilment
from shared.mail import MailRequest
from shared.orders import Order, Status
from shared.ports import Ports
from shared.store.orders import OrderStore

MAX_LISTED = 100


class Waiting(BaseModel):
    order_id: str
    product_id: str
    quantity: int
    paid_at: datetime | None
    promised_by: datetime  # the time promised to the buyer: past it, the order is late


def awaiting(merchant_id: str, orders: OrderStore, limit: int = MAX_LISTED) -> list[Waiting]:
    """The merchant's paid manual orders, the most urgent first. The index is eventually consistent,
    so each order is read (one batch) and only those still PAID are listed."""
    entries = dict(orders.awaiting_fulfilment(merchant_id, limit))
    found = {o.order_id: o for o in orders.get_many(set(entries)) if o.status == Status.PAID}
    return [
        Waiting(
            order_id=order_id,
            product_id=order.product_id,
            quantity=order.quantity,
            paid_at=next((e.at for e in order.history if e.type == "payment.succeeded"), None),
            promised_by=datetime.fromtimestamp(promised, tz=order.created_at.tzinfo),
        )
        for order_id, promised in sorted(entries.items(), key=lambda entry: (entry[1], entry[0]))
        if (order := found.get(order_id)) is not None and order.merchant_id == merchant_id
    ]


def fulfil(merchant_id: str, order_id: str, fulfilment: Fulfilment, ports: Ports, now: datetime) -> Order:
    """Deliver the merchant's own PAID manual order with `fulfilment`; 409 if it is not one."""
    orders = ports.orders
    order = owned_order(merchant_id, order_id, orders)
    cipher = ports.ciphers(merchant_id)
    if order.delivery != "manual":
        raise StateConflict("only a manual order is fulfilled by hand", code="not_manual")
    if fulfilment.codes and len(fulfilment.codes) != order.quantity:
        raise StateConflict(
            f"give one code per unit: this order is for {order.quantity}", code="codes_do_not_match_quantity"
        )
    if order.status == Status.PAID:
        sealed = seal_fulfilment(fulfilment, order.order_id, cipher)
        data = {"quantity": order.quantity, "by": "merchant"}
        try:
            order = orders.transition(order, "order.delivered", now, data, fulfilment=sealed)
        except StateConflict:  # changed meanwhile, or this write applied and its answer was lost
            order = owned_order(merchant_id, order_id, orders)
    if order.status != Status.DELIVERED or open_fulfilment(order, cipher) != fulfilment:
        raise StateConflict(
            f"the order is {order.status.value}, not waiting to be fulfilled (or fulfilled otherwise)",
            code="order_not_awaiting_fulfilment",
        )
    # Told again on a retry (the first may have crashed before): the events keep their ids, and a
    # buyer's mail may go twice, never zero times.
    queues.request_mail(MailRequest(mail="order", order_id=order.order_id), ports.notify)
    queues.emit("order.delivered", order, ports.notify)
    return order
