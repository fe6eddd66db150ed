"""Stripe through the port: a hosted Checkout Session to redirect to, `Stripe-Signature` events,
PaymentIntent search for lost callbacks, and refunds keyed by the shop's refund id.

Each Checkout Session carries the order id on the session (`client_reference_id`, `metadata`: what
its events report) and on its PaymentIntent (`payment_intent_data.metadata`: what search finds).
Stripe copies a PaymentIntent's metadata to the Charge it creates when the payment is confirmed
(support.stripe.com/questions/how-metadata-works-with-related-objects), so `charge.refunded`
carries the order id too.

The payer (docs/payments.md "Payer") is on the Charge only: `payment_method_details.card`
(`fingerprint`, `country`). `checkout.session.completed` carries no Charge and no PaymentMethod, so
a Checkout callback names no payer; the search that finds lost payments expands `latest_charge` (the
same one call) and does.

A dispute (`charge.dispute.created`) names its Charge and PaymentIntent by id only, never their
metadata, and webhook events are never expanded; so the shop asks Stripe for that PaymentIntent (one
call, with its `latest_charge` expanded: the disputed card's fingerprint comes in the same answer) and
reads the order id the checkout put in its metadata. Disputes are rare: the call costs nothing on the
paths every order takes, where keeping a payment-to-order index of our own would.
"""

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

import urllib3
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import BadInput, ProviderDown
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order
from shared.payments import PaymentEvent, card_country_of, payer_of
from shared.providers import (
    REPLIES,
    PaymentStart,
    ProviderError,
    ProviderRefused,
    RefundRequest,
    RefundState,
    Reply,
    UnexpectedAnswer,
)
from shared.providers.config import StripeConfig
from shared.providers.http import call, new_pool, parse_body, validate_data
from shared.providers.signatures import verify_sandbox_signature

SIGNATURE_TOLERANCE = 300  # seconds (Stripe's libraries' default)
MAX_EVENT_BYTES = 256 * 1024  # a Checkout Session or Charge event is a few KiB
# Pinned so that answers keep the shape parsed here when the account's default version moves on.
API_VERSION = "2025-03-31.basil"
# Stripe takes a session lifetime of 30 minutes to 24 hours. Derived from the order, not the clock,
# so a retried checkout sends the same parameters (Stripe refuses a reused Idempotency-Key with
# others); the slack covers a first attempt made a few minutes after the order.
SESSION_MIN, SESSION_MAX, SESSION_SLACK = 30 * 60, 24 * 3600, 10 * 60
# Currencies whose Stripe amounts are not ISO 4217 minor units: ISK stays two-decimal in Stripe's
# API (docs.stripe.com/currencies#special-cases), while shared/money.py counts whole krónur.
STRIPE_SCALE = {"ISK": 100}
PAGE = 100  # one order has one session and so one PaymentIntent: a page holds all of it
REFUND_STATES = {
    "succeeded": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "requires_action": RefundState.PENDING,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}

_T = TypeVar("_T", bound=BaseModel)
StripeId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]
Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$")]
Metadata = Annotated[
    dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]], Field(max_length=50)
]


class _Object(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)  # Stripe adds fields; unknown ones are ignored


class _Session(_Object):
    object: Literal["checkout.session"]
    id: StripeId
    url: str | None = Field(default=None, max_length=4096, pattern=r"^https?://")
    client_reference_id: str | None = Field(default=None, max_length=200)
    metadata: Metadata = {}
    payment_intent: StripeId | None = None
    payment_status: Literal["paid", "unpaid", "no_payment_required"]
    amount_total: Amount | None = None
    currency: Currency | None = None


class _PaymentIntent(_Object):
    object: Literal["payment_intent"]
    id: StripeId
    status: str = Field(max_length=40)
    amount_received: Amount
    currency: Currency
    metadata: Metadata = {}
    payment_method: Any = None  # an id, or the object when expanded
    latest_charge: Any = None  # the Charge, expanded by the search (an id otherwise)


class _Refund(_Object):
    object: Literal["refund"]
    id: StripeId
    status: str = Field(max_length=40)
    amount: Amount
    currency: Currency
    payment_intent: StripeId | None = None
    metadata: Metadata = {}


class _RefundList(_Object):
    object: Literal["list"]
    data: list[_Refund] = Field(max_length=PAGE)
    has_more: bool


class _SearchResult(_Object):
    object: Literal["search_result"]
    data: list[_PaymentIntent] = Field(max_length=PAGE)
    has_more: bool


class _Charge(_Object):
    object: Literal["charge"]
    id: StripeId
    payment_intent: StripeId | None = None
    amount_refunded: Amount
    currency: Currency
    metadata: Metadata = {}
    refunds: _RefundList | None = None  # only in API versions before 2022-11-15


class _Dispute(_Object):
    object: Literal["dispute"]
    id: StripeId
    charge: StripeId
    payment_intent: StripeId | None = None
    amount: Amount
    currency: Currency
    reason: Any = None  # read leniently (`_reason`): a reason Stripe adds is no reason to refuse the event


class _EventData(_Object):
    object: dict[str, Any]


class _Event(_Object):
    object: Literal["event"]
    id: StripeId
    type: str = Field(max_length=100)
    livemode: bool
    data: _EventData


class StripeProvider:
    """Stripe Checkout (a PaymentProvider)."""

    name = "stripe"

    def __init__(
        self, config: StripeConfig, notify_url: str, http: urllib3.PoolManager | None = None
    ) -> None:
        # notify_url is unused: Stripe's endpoint is registered in its dashboard, not per request.
        self._config, self._api_url = config, config.api_url.rstrip("/")
        self._live = config.secret_key.startswith(("sk_live_", "rk_live_"))
        self._http = http or new_pool()

    def __repr__(self) -> str:  # never a key
        return f"StripeProvider({self._api_url!r}, live={self._live})"

    def start(self, order: Order, return_url: str) -> PaymentStart:
        created = int(order.created_at.timestamp())
        expires_at = min(
            max(int(order.expires_at.timestamp()), created + SESSION_MIN + SESSION_SLACK),
            created + SESSION_MAX - SESSION_SLACK,
        )
        amount, currency = _to_stripe(order.total)
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": currency,
            "line_items[0][price_data][unit_amount]": str(amount),
            "line_items[0][price_data][product_data][name]": f"Order {order.order_id}",
            "line_items[0][quantity]": "1",
            "client_reference_id": order.order_id,
            "metadata[order_id]": order.order_id,
            "payment_intent_data[metadata][order_id]": order.order_id,
            "success_url": return_url,
            "cancel_url": return_url,
            "expires_at": str(expires_at),
        }
        session = self._ask(_Session, "POST", "/v1/checkout/sessions", form, f"checkout-{order.order_id}")
        made = (session.client_reference_id, session.amount_total, session.currency)
        if made != (order.order_id, amount, currency) or not session.url:
            raise UnexpectedAnswer("stripe answered with a session for another order or amount")
        return PaymentStart(kind="redirect", url=session.url)

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        verify_sandbox_signature(
            self._config.webhook_secret,
            headers.get("stripe-signature"),
            body,
            now=now,
            tolerance=SIGNATURE_TOLERANCE,
            header_name="Stripe-Signature",
        )
        if len(body) > MAX_EVENT_BYTES:
            raise BadInput("stripe event is too large")
        event = parse_body(_Event, body, "stripe", BadInput)
        if event.livemode != self._live:
            raise BadInput("stripe event is from the other mode (live/test) than this shop's key")
        if event.type.startswith("checkout.session."):
            return self._session_event(event, validate_data(_Session, event.data.object, "stripe", BadInput))
        if event.type == "charge.refunded":
            return self._refund_event(event, validate_data(_Charge, event.data.object, "stripe", BadInput))
        if event.type == "charge.dispute.created":
            return self._dispute_event(validate_data(_Dispute, event.data.object, "stripe", BadInput))
        return []

    def acknowledgement(self) -> Reply:
        return REPLIES["stripe"]

    def query(self, order_id: str) -> list[PaymentEvent]:
        """Succeeded PaymentIntents made for the order (search lags writes by up to a minute, and
        reconcile asks again later)."""
        if "'" in order_id or "\\" in order_id:
            raise BadInput("an order id with a quote or backslash cannot be searched for")
        search = {"query": f"metadata['order_id']:'{order_id}'", "limit": PAGE}
        try:  # the Charge (card fingerprint and country) in the same answer
            found = self._ask(
                _SearchResult,
                "GET",
                f"/v1/payment_intents/search?{urlencode({**search, 'expand[]': 'data.latest_charge'})}",
            )
        except ProviderRefused:  # a restricted key without Charges read: the payment, without its card
            found = self._ask(_SearchResult, "GET", f"/v1/payment_intents/search?{urlencode(search)}")
        if found.has_more:
            raise UnexpectedAnswer("stripe found more payments for one order than an order can have")
        events: list[PaymentEvent] = []
        for intent in found.data:
            if intent.status != "succeeded" or intent.metadata.get("order_id") != order_id:
                continue
            charge = intent.latest_charge if isinstance(intent.latest_charge, dict) else {}
            payer, country = _paid_with(charge.get("payment_method_details"), intent.payment_method)
            events.append(
                PaymentEvent(
                    provider=self.name,
                    event_id=f"query:{intent.id}",
                    type="payment.succeeded",
                    order_id=order_id,
                    payment_id=intent.id,
                    amount=_from_stripe(intent.amount_received, intent.currency, UnexpectedAnswer),
                    payer=payer,
                    card_country=country,
                )
            )
        return events

    def refund(self, request: RefundRequest) -> RefundState:
        """Idempotent by `refund_id` for Stripe's 24 hours of key memory; after that, refund_state
        (asked first) finds it by its metadata."""
        amount, _ = _to_stripe(request.amount)
        form = {
            "payment_intent": request.payment_id,
            "amount": str(amount),
            "metadata[order_id]": request.order_id,
            "metadata[refund_id]": request.refund_id,
        }
        return _state(self._ask(_Refund, "POST", "/v1/refunds", form, request.refund_id), request)

    def refund_state(self, request: RefundRequest) -> RefundState | None:
        query = urlencode({"payment_intent": request.payment_id, "limit": PAGE})
        refunds = self._ask(_RefundList, "GET", f"/v1/refunds?{query}")
        for refund in refunds.data:
            if refund.metadata.get("refund_id") == request.refund_id:
                return _state(refund, request)
        if refunds.has_more:
            raise UnexpectedAnswer("stripe lists more refunds of one payment than a page holds")
        return None

    def _session_event(self, event: _Event, session: _Session) -> list[PaymentEvent]:
        reference, tagged = session.client_reference_id, session.metadata.get("order_id")
        if reference is None and tagged is None:
            return []  # not a checkout this shop made (a Payment Link on the same account, say)
        if reference is None or tagged not in (None, reference):
            raise BadInput("stripe session names two different orders")
        if event.type == "checkout.session.async_payment_failed":
            kind: Literal["payment.succeeded", "payment.failed"] = "payment.failed"
        elif event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if session.payment_status != "paid":
                return []  # a delayed method (bank debit): async_payment_succeeded / _failed follows
            kind = "payment.succeeded"
        else:
            return []  # expired and the like: the order expires on its own
        if session.payment_intent is None or session.amount_total is None or session.currency is None:
            raise BadInput("stripe session event has no payment intent or amount")
        return [
            PaymentEvent(
                provider=self.name,
                event_id=event.id,
                type=kind,
                order_id=reference,
                payment_id=session.payment_intent,
                amount=_from_stripe(session.amount_total, session.currency, BadInput),
            )
        ]

    def _refund_event(self, event: _Event, charge: _Charge) -> list[PaymentEvent]:
        # The order id is the PaymentIntent's metadata, copied to its Charge (see the module
        # docstring); a charge without it was not made by this shop's checkouts.
        order_id = charge.metadata.get("order_id")
        if order_id is None or charge.payment_intent is None:
            return []
        # The Charge lists its refunds only in API versions before 2022-11-15; a later endpoint
        # version (or a refund from the dashboard) leaves ours unnamed.
        refunds = charge.refunds.data if charge.refunds else []
        refund_id = next((r.metadata["refund_id"] for r in refunds if "refund_id" in r.metadata), None)
        # amount_refunded is all that was given back so far, whoever refunded it.
        return [
            PaymentEvent(
                provider=self.name,
                event_id=event.id,
                type="refund.succeeded",
                order_id=order_id,
                payment_id=charge.payment_intent,
                amount=_from_stripe(charge.amount_refunded, charge.currency, BadInput),
                refund_id=refund_id,
            )
        ]

    def _dispute_event(self, dispute: _Dispute) -> list[PaymentEvent]:
        """The dispute as an event of the order its PaymentIntent's metadata names (see the module
        docstring). Stripe not answering is 503, so Stripe sends the event again later (a dispute is
        never dropped for want of an answer); a payment no checkout of the shop made is nothing."""
        if dispute.payment_intent is None:
            return []  # a charge made without a PaymentIntent: not by this shop's checkouts
        try:
            intent = self._intent(dispute.payment_intent)
        except ProviderError as error:
            raise ProviderDown(f"stripe could not be asked about a disputed payment ({error})") from None
        order_id = intent.metadata.get("order_id")
        if order_id is None:
            return []  # a Payment Link or an invoice on the same account: not an order of this shop
        charge = intent.latest_charge if isinstance(intent.latest_charge, dict) else {}
        disputed = charge if charge.get("id") == dispute.charge else {}  # its card, if it is that Charge
        payer, _ = _paid_with(disputed.get("payment_method_details"), intent.payment_method)
        return [
            PaymentEvent(
                provider=self.name,
                event_id=f"dispute:{dispute.id}",  # the dispute once, whichever event reports it
                type="payment.disputed",
                order_id=order_id,
                payment_id=intent.id,
                amount=_from_stripe(dispute.amount, dispute.currency, BadInput),
                dispute_id=dispute.id,
                reason=_reason(dispute.reason),
                payer=payer,
            )
        ]

    def _intent(self, intent_id: str) -> _PaymentIntent:
        """The PaymentIntent with its latest Charge (the card); without the Charge if the key may not
        read Charges (a restricted key without Charges read)."""
        path = f"/v1/payment_intents/{intent_id}"
        try:
            intent = self._ask(_PaymentIntent, "GET", f"{path}?{urlencode({'expand[]': 'latest_charge'})}")
        except ProviderRefused:
            intent = self._ask(_PaymentIntent, "GET", path)
        if intent.id != intent_id:
            raise UnexpectedAnswer("stripe answered about another payment")
        return intent

    def _ask(
        self, model: type[_T], method: str, path: str, form: dict[str, str] | None = None, key: str = ""
    ) -> _T:
        headers = {
            "Authorization": f"Bearer {self._config.secret_key}",
            "Stripe-Version": API_VERSION,
            "Accept": "application/json",
        }
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if key:
            headers["Idempotency-Key"] = key
        body = urlencode(form).encode() if form is not None else None
        answer = call(self._http, "stripe", method, f"{self._api_url}{path}", headers, body)
        return parse_body(model, answer.body, "stripe", UnexpectedAnswer)


def _paid_with(details: Any, method: Any) -> tuple[str | None, str | None]:
    """(payer, card country) from a Charge's `payment_method_details` and its `payment_method`.

    The payer is the fingerprint Stripe gives what paid (`card.fingerprint`: one per card number;
    Stripe gives one for some other methods too), else the PaymentMethod's id, which Checkout makes
    anew for each guest payment and so links no two orders. Read leniently: Stripe adds fields and
    methods, and an odd one names no payer rather than refusing the payment."""
    kind = details.get("type") if isinstance(details, dict) else None
    used = details.get(kind) if isinstance(details, dict) and isinstance(kind, str) else None
    used = used if isinstance(used, dict) else {}
    method_id = method.get("id") if isinstance(method, dict) else method
    payer = payer_of("stripe", used.get("fingerprint")) or payer_of("stripe", method_id)
    return payer, card_country_of(used.get("country")) if kind == "card" else None


def _reason(reason: Any) -> str | None:
    """A dispute's reason as Stripe names it (`fraudulent`, `product_not_received`, …), or None."""
    return reason if isinstance(reason, str) and re.fullmatch(r"[a-z_]{1,40}", reason) else None


def _state(refund: _Refund, request: RefundRequest) -> RefundState:
    if (
        refund.metadata.get("refund_id") != request.refund_id
        or refund.payment_intent != request.payment_id
        or (refund.amount, refund.currency) != _to_stripe(request.amount)
    ):
        raise UnexpectedAnswer("stripe answered about another refund")
    if refund.status not in REFUND_STATES:
        raise UnexpectedAnswer("stripe refund has an unknown status")
    return REFUND_STATES[refund.status]


def _to_stripe(money: Money) -> tuple[int, str]:
    return money.amount * STRIPE_SCALE.get(money.currency, 1), money.currency.lower()


def _from_stripe(amount: int, currency: str, error: type[Exception]) -> Money:
    code = currency.upper()
    whole, rest = divmod(amount, STRIPE_SCALE.get(code, 1))
    if rest:
        raise error(f"stripe amount in {code} is not a whole unit")
    return Money(amount=whole, currency=code)
