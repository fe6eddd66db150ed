"""Payments: the one normalised event every provider's callback becomes, and the rule every payment
and refund is held to (I3): bound to its order, at the order's exact amount and currency. How a
callback's signature is checked is the providers' (shared/providers/signatures.py).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.errors import PaymentMismatch
from shared.money import Money
from shared.orders import Order

EventType = Literal["payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed"]


class PaymentEvent(BaseModel):
    """What every provider's callback (or answer to a query) is turned into.

    `payment_id` is the provider's id of the payment (Stripe PaymentIntent, Alipay trade_no, WeChat
    Pay transaction_id), the same in a callback and in a query's answer. For refund events `amount`
    is the amount given back and `refund_id` the shop's refund request id, when the refund was ours.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    event_id: str
    type: EventType
    order_id: str
    payment_id: str
    amount: Money
    refund_id: str | None = None


def check_payment_matches(order: Order, event: PaymentEvent) -> None:
    """I3: a payment counts only for its own order, at the order's exact amount and currency."""
    if event.order_id != order.order_id:
        raise PaymentMismatch("payment is bound to another order")
    if event.provider != order.provider:
        raise PaymentMismatch("payment came from a provider the order was not sent to")
    if event.amount.currency != order.total.currency:
        raise PaymentMismatch("payment currency differs from the order's")
    if event.amount.amount != order.total.amount:
        raise PaymentMismatch("payment amount differs from the order's")


def check_refund_matches(order: Order, event: PaymentEvent) -> None:
    """A refund counts only for its own order's payment, in the order's currency, at most what was paid."""
    if event.order_id != order.order_id or event.provider != order.provider:
        raise PaymentMismatch("refund is bound to another order")
    if order.payment is not None and event.payment_id != order.payment.payment_id:
        raise PaymentMismatch("refund is for another payment than the order's")
    if event.amount.currency != order.total.currency:
        raise PaymentMismatch("refund currency differs from the order's")
    if event.amount.amount > order.total.amount:
        raise PaymentMismatch("refund is larger than the order's total")
