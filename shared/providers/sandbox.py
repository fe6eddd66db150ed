"""The sandbox provider through the port: a pay page to redirect to, Stripe-scheme signed callbacks,
and a signed API (queries about an order's payments, refunds) whose answers are signed too.

An answer is trusted only when its `Sandbox-Signature` verifies with our secret; it is bound to the
order asked about, and every payment in it becomes the same event however often it is asked (I5).
"""

import json
import time
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from pydantic import BaseModel, Field, ValidationError

from shared.errors import BadInput, PaymentMismatch
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order
from shared.payments import MAX_PAYER_ID, PaymentEvent, card_country_of, payer_of
from shared.providers import REPLIES, PaymentStart, RefundRequest, RefundState, Reply, UnexpectedAnswer
from shared.providers.http import call, new_pool, parse_body
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature

SIGNATURE_TOLERANCE = 300  # seconds


def signed_query(path: str, order_id: str) -> bytes:
    """What a query's `Sandbox-Signature` signs: `GET <path>?order_id=<order_id %-encoded, no safe chars>`.

    A canonical form rather than the bytes on the wire: the local gateway hands the sandbox the
    parsed query only, and the client always sends exactly this form.
    """
    return f"GET {path}?order_id={quote(order_id, safe='')}".encode()


class _Buyer(BaseModel):
    """Who paid, where the sandbox says (tests script buyers with them; docs/API.md)."""

    payer: str | None = Field(default=None, pattern=rf"^[\x21-\x7e]{{1,{MAX_PAYER_ID}}}$")
    card_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    @property
    def payer_name(self) -> str | None:
        return payer_of("sandbox", self.payer)


class _SandboxData(_Buyer):
    order_id: str = Field(min_length=1, max_length=64)
    payment_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    refund_id: str | None = Field(default=None, min_length=1, max_length=64)
    # A dispute's (a chargeback the buyer opened; docs/payments.md "Disputes")
    dispute_id: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$")


class _SandboxBody(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["payment.succeeded", "refund.succeeded", "payment.disputed"]
    data: _SandboxData


def parse_sandbox_event(body: bytes) -> PaymentEvent:
    """Turn a verified sandbox callback body into a PaymentEvent, or raise BadInput."""
    try:
        parsed = _SandboxBody.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError) as error:
        raise BadInput(f"callback body is not a valid sandbox event: {_first_error(error)}") from None
    data = parsed.data
    paid = parsed.type == "payment.succeeded"  # a refund event names no payer
    disputed = parsed.type == "payment.disputed"  # a dispute may name who paid, as Stripe's Charge does
    if disputed and data.dispute_id is None:
        raise BadInput("callback body is not a valid sandbox event: data.dispute_id: a dispute needs one")
    return PaymentEvent(
        provider="sandbox",
        # the dispute once, however many callbacks report it (as Stripe's, shared/providers/stripe.py)
        event_id=f"dispute:{data.dispute_id}" if disputed else parsed.id,
        type=parsed.type,
        order_id=data.order_id,
        payment_id=data.payment_id,
        amount=Money(amount=data.amount, currency=data.currency),
        refund_id=data.refund_id,
        dispute_id=data.dispute_id if disputed else None,
        reason=data.reason if disputed else None,
        payer=data.payer_name if paid or disputed else None,
        card_country=card_country_of(data.card_country) if paid else None,
    )


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return "body is not JSON"


class _Payment(_Buyer):
    payment_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    status: Literal["pending", "succeeded", "failed", "refunded"]


class _Answer(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    payments: list[_Payment] = Field(max_length=100)


class _Refund(BaseModel):
    refund_id: str = Field(min_length=1, max_length=64)
    status: Literal["pending", "succeeded", "failed"]


class SandboxProvider:
    """The sandbox (a PaymentProvider)."""

    name = "sandbox"

    def __init__(
        self, api_url: str, secret: str, pay_url: str = "", http: urllib3.PoolManager | None = None
    ) -> None:
        if not secret:
            raise ValueError("the sandbox needs a signing secret")
        self._api_url, self._secret, self._pay_url = api_url, secret, pay_url
        self._path = urlsplit(api_url).path
        self._refunds_url = api_url.rsplit("/", 1)[0] + "/refunds"
        self._http = http or new_pool()

    def __repr__(self) -> str:  # never the secret
        return f"SandboxProvider({self._api_url!r})"

    def start(self, order: Order, return_url: str) -> PaymentStart:
        query = urlencode(
            {
                "order_id": order.order_id,
                "amount": order.total.amount,
                "currency": order.total.currency,
                "return_url": return_url,
            }
        )
        return PaymentStart(kind="redirect", url=f"{self._pay_url}?{query}")

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        verify_sandbox_signature(
            self._secret, headers.get("sandbox-signature"), body, now=now, tolerance=SIGNATURE_TOLERANCE
        )
        return [parse_sandbox_event(body)]

    def acknowledgement(self) -> Reply:
        return REPLIES["sandbox"]

    def query(self, order_id: str) -> list[PaymentEvent]:
        """Succeeded payments the sandbox took for `order_id`, as events with ids stable across queries."""
        signature = sandbox_signature(self._secret, signed_query(self._path, order_id), int(time.time()))
        body = self._signed_answer(
            "GET", f"{self._api_url}?order_id={quote(order_id, safe='')}", {"Sandbox-Signature": signature}
        )
        answer = parse_body(_Answer, body, "sandbox")
        if answer.order_id != order_id:
            raise PaymentMismatch("the provider answered about another order")
        return [
            PaymentEvent(
                provider="sandbox",
                event_id=f"query:{payment.payment_id}",
                type="payment.succeeded",
                order_id=answer.order_id,
                payment_id=payment.payment_id,
                amount=Money(amount=payment.amount, currency=payment.currency),
                payer=payment.payer_name,
                card_country=card_country_of(payment.card_country),
            )
            for payment in answer.payments
            if payment.status == "succeeded"
        ]

    def refund(self, request: RefundRequest) -> RefundState:
        """`POST …/refunds` with the request as a signed JSON body; the sandbox dedupes by refund_id."""
        payload = {
            "refund_id": request.refund_id,
            "order_id": request.order_id,
            "payment_id": request.payment_id,
            "amount": request.amount.amount,
            "currency": request.amount.currency,
        }
        body = json.dumps(payload).encode()
        signature = sandbox_signature(self._secret, body, int(time.time()))
        headers = {"Sandbox-Signature": signature, "Content-Type": "application/json"}
        refund = parse_body(_Refund, self._signed_answer("POST", self._refunds_url, headers, body), "sandbox")
        if refund.refund_id != request.refund_id:
            raise UnexpectedAnswer("the sandbox answered about another refund")
        return RefundState(refund.status)

    def refund_state(self, request: RefundRequest) -> RefundState | None:
        path = urlsplit(self._refunds_url).path
        signed = f"GET {path}?refund_id={quote(request.refund_id, safe='')}".encode()
        signature = sandbox_signature(self._secret, signed, int(time.time()))
        url = f"{self._refunds_url}?refund_id={quote(request.refund_id, safe='')}"
        body = self._signed_answer("GET", url, {"Sandbox-Signature": signature}, accept=(200, 404))
        if body is None:
            return None
        refund = parse_body(_Refund, body, "sandbox")
        if refund.refund_id != request.refund_id:
            raise UnexpectedAnswer("the sandbox answered about another refund")
        return RefundState(refund.status)

    def _signed_answer(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> bytes:
        """The verified body of an accepted answer (None for a 404 when 404 is accepted)."""
        answer = call(
            self._http, "sandbox", method, url, {**headers, "Accept": "application/json"}, body, accept
        )
        if answer.status == 404:
            return None  # type: ignore[return-value]
        verify_sandbox_signature(
            self._secret,
            answer.headers.get("sandbox-signature"),
            answer.body,
            now=int(time.time()),
            tolerance=SIGNATURE_TOLERANCE,
        )
        return answer.body
