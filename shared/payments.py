"""Payments: the one normalised event every provider's callback becomes, and the rule every payment
and refund is held to (I3): bound to its order, at the order's exact amount and currency. How a
callback's signature is checked is the providers' (shared/providers/signatures.py).
"""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import PaymentMismatch
from shared.money import Money
from shared.orders import Order

EventType = Literal[
    "payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed", "payment.disputed"
]

MAX_PAYER_ID = 200  # the provider's id of an account: printable ASCII without spaces
_PAYER_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_PAYER_ID}}}")
_PAYER = rf"^[a-z][a-z0-9]{{0,19}}:[\x21-\x7e]{{1,{MAX_PAYER_ID}}}$"
_COUNTRY = re.compile(r"[A-Za-z]{2}")


class PaymentEvent(BaseModel):
    """What every provider's callback (or answer to a query) is turned into.

    `payment_id` is the provider's id of the payment (Stripe PaymentIntent, Alipay trade_no, WeChat
    Pay transaction_id), the same in a callback and in a query's answer. For refund events `amount`
    is the amount given back and `refund_id` the shop's refund request id, when the refund was ours.
    A dispute (chargeback, `payment.disputed`) names the provider's `dispute_id`, its `reason` where
    the provider gives one, and the amount disputed; its `event_id` is `dispute:<dispute_id>`, so the
    same dispute reported twice is one event (shared/disputes.py).

    On payment events, `payer` is the paying account at the provider, `<provider>:<its id>`, and
    `card_country` the paying card's country (ISO 3166-1 alpha-2), where the provider's message names
    them (docs/payments.md "Payer"); a dispute may name the payer of the disputed payment; refund
    events carry neither. Both are personal data: never
    logged, left out of the repr, and a malformed one is refused without echoing it.
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    provider: str
    event_id: str
    type: EventType
    order_id: str
    payment_id: str
    amount: Money
    refund_id: str | None = None
    dispute_id: str | None = None
    reason: str | None = None  # a dispute's, as the provider names it ("fraudulent", ...)
    payer: str | None = Field(default=None, pattern=_PAYER, repr=False)
    card_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", repr=False)


def payer_of(provider: str, account: object) -> str | None:
    """`<provider>:<account>` for the provider's id of the paying account; None when the message
    gives none, or something that is not an id (not printable ASCII, spaces, over 200 characters):
    a payment is never refused over its payer, it just carries no payer signal."""
    if not isinstance(account, str) or not _PAYER_ID.fullmatch(account):
        return None
    return f"{provider}:{account}"


def card_country_of(code: object) -> str | None:
    """A card's country as ISO 3166-1 alpha-2 in upper case; None when absent or not two letters."""
    if not isinstance(code, str) or not _COUNTRY.fullmatch(code):
        return None
    return code.upper()


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
