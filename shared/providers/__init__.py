"""Payment providers as the shop's peers, behind one port.

Every provider (sandbox, Stripe, Alipay, WeChat Pay) does the same five things for the shop: start a
payment for an order (a redirect URL or QR content), verify and parse its callback into normalised
`PaymentEvent`s, say which payments it took for an order (reconciliation's lost callbacks), refund a
payment, and say what became of a refund. What a callback means for an order is decided once, in the
webhook and refund code, never in a provider module (shared/payments.py holds the common rules).
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.money import Money
from shared.orders import Order
from shared.payments import PaymentEvent

PROVIDERS = ("sandbox", "stripe", "alipay", "wechatpay")
# Currencies a provider settles in, where it is not any (domestic Alipay and WeChat Pay: CNY only).
CURRENCIES: dict[str, set[str]] = {"alipay": {"CNY"}, "wechatpay": {"CNY"}}


class Reply(BaseModel):
    """What the provider expects back from a callback it may stop sending (Alipay: the text `success`)."""

    model_config = ConfigDict(frozen=True)

    status: int = 200
    content_type: str = "application/json"
    body: str | None = None  # None: the shop's own `{"received": true, "outcome": …}`


# What each provider is told when its callback is recorded (each provider's acknowledgement()).
REPLIES: dict[str, Reply] = {
    "sandbox": Reply(),
    "stripe": Reply(),
    # Alipay re-sends the notify until it reads exactly these seven characters.
    "alipay": Reply(status=200, content_type="text/plain", body="success"),
    # "接收成功：HTTP应答状态码需返回200或204，无需返回应答报文" — the status alone says received.
    "wechatpay": Reply(status=204, content_type="text/plain", body=""),
}


class PaymentStart(BaseModel):
    """Where the buyer pays: a page to redirect to, or QR content to show (Alipay precreate, WeChat Native)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["redirect", "qr"]
    url: str


class RefundRequest(BaseModel):
    """One refund of one payment. `refund_id` is the shop's idempotency key at the provider
    (Stripe `Idempotency-Key`, Alipay `out_request_no`, WeChat Pay `out_refund_no`): asking twice
    never refunds twice."""

    model_config = ConfigDict(frozen=True)

    refund_id: str
    order_id: str
    payment_id: str
    amount: Money  # what is given back
    paid: Money  # what the payment was (WeChat Pay needs both)
    reason: str = ""


class RefundState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PaymentProvider(Protocol):
    """Each provider class is built as `Provider(config, notify_url, http=None)`: its entry of the
    provider secret, the shop's callback URL for it (`<PUBLIC_BASE_URL>/webhooks/<name>`), and an
    optional urllib3 pool (shared/providers/http.py makes the default one)."""

    name: str

    def start(self, order: Order, return_url: str) -> PaymentStart:
        """Create the payment at the provider (or sign its redirect) for the order's exact total."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        """Verify a callback (headers lower-cased, raw body) and turn it into events.

        Raises InvalidSignature (forged, tampered, stale, wrong key, probe) or BadInput (verified but
        unreadable, or another merchant's app/account). A verified callback that means nothing to the
        shop (a status it does not act on) is `[]`, acknowledged so the provider stops sending it.
        ProviderDown (503, sent again by the provider) when a verified event names its order only
        through the provider, which does not answer (a Stripe dispute: shared/providers/stripe.py).
        """
        ...

    def acknowledgement(self) -> Reply:
        """The reply that tells the provider a callback was recorded."""
        ...

    def query(self, order_id: str) -> list[PaymentEvent]:
        """Succeeded payments for the order, as events with ids stable across queries."""
        ...

    def refund(self, request: RefundRequest) -> RefundState:
        """Ask for the refund (idempotent by `request.refund_id`)."""
        ...

    def refund_state(self, request: RefundRequest) -> RefundState | None:
        """What became of the refund; None if the provider has never heard of it."""
        ...


class ProviderError(Exception):
    """The provider could not tell us about a payment; nothing is applied, the next run asks again."""


class ProviderUnavailable(ProviderError):
    """No answer: a network error, a timeout, or a 5xx still there after the retries."""


class ProviderRefused(ProviderError):
    """The provider refused the request (4xx, e.g. signed with a wrong secret); retrying will not help."""


class UnexpectedAnswer(ProviderError):
    """A (signed) answer that is not what the provider's API promises (not JSON, wrong types, too large)."""
