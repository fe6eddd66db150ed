"""Asking the sandbox provider which payments it took for an order: a signed request, a signed answer.

The answer is trusted only when its `Sandbox-Signature` verifies with our secret; it is bound to the
order asked about, and every payment in it becomes the same event however often it is asked (I5).
"""

import json
import time
from typing import Literal
from urllib.parse import quote, urlsplit

import urllib3
from pydantic import BaseModel, Field, ValidationError

from shared.errors import PaymentMismatch
from shared.money import MAX_AMOUNT, Money
from shared.payments import PaymentEvent, sandbox_signature, verify_sandbox_signature
from shared.providers import ProviderRefused, ProviderUnavailable, UnexpectedAnswer

TIMEOUT = urllib3.Timeout(connect=2, read=5)
RETRIES = urllib3.Retry(
    total=2, backoff_factor=0.2, status_forcelist=[502, 503, 504], allowed_methods=["GET"]
)
SIGNATURE_TOLERANCE = 300  # seconds
MAX_ANSWER_BYTES = 1 << 20


def signed_query(path: str, order_id: str) -> bytes:
    """What a query's `Sandbox-Signature` signs: `GET <path>?order_id=<order_id %-encoded, no safe chars>`.

    A canonical form rather than the bytes on the wire: the local gateway hands the sandbox the
    parsed query only, and the client always sends exactly this form.
    """
    return f"GET {path}?order_id={quote(order_id, safe='')}".encode()


def new_pool(timeout: urllib3.Timeout = TIMEOUT, retries: urllib3.Retry = RETRIES) -> urllib3.PoolManager:
    """A pool with explicit timeouts and retries (GETs only, on 502/503/504 and I/O errors)."""
    return urllib3.PoolManager(timeout=timeout, retries=retries)


class _Payment(BaseModel):
    payment_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    status: Literal["pending", "succeeded", "failed", "refunded"]


class _Answer(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    payments: list[_Payment] = Field(max_length=100)


class SandboxQuery:
    """The sandbox's payment query API (a PaymentQuery)."""

    def __init__(self, api_url: str, secret: str, http: urllib3.PoolManager | None = None) -> None:
        if not secret:
            raise ValueError("the sandbox query needs a signing secret")
        self._api_url, self._secret = api_url, secret
        self._path = urlsplit(api_url).path
        self._http = http or new_pool()

    def __repr__(self) -> str:  # never the secret
        return f"SandboxQuery({self._api_url!r})"

    def query(self, order_id: str) -> list[PaymentEvent]:
        """Succeeded payments the sandbox took for `order_id`, as events with ids stable across queries."""
        answer = self._parse(self._ask(order_id))
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
            )
            for payment in answer.payments
            if payment.status == "succeeded"
        ]

    def _ask(self, order_id: str) -> bytes:
        """The verified body of a 200 answer."""
        signature = sandbox_signature(self._secret, signed_query(self._path, order_id), int(time.time()))
        try:
            response = self._http.request(
                "GET",
                f"{self._api_url}?order_id={quote(order_id, safe='')}",
                headers={"Sandbox-Signature": signature, "Accept": "application/json"},
                redirect=False,
                preload_content=False,
            )
            try:
                body = response.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    response.close()  # the rest is unread: this connection cannot be reused
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
            raise ProviderUnavailable(f"sandbox query failed: {type(cause).__name__}") from None
        if response.status >= 500:
            raise ProviderUnavailable(f"sandbox query answered {response.status}")
        if response.status in (401, 403):
            raise ProviderRefused(f"sandbox refused the query ({response.status}): check SANDBOX_SECRET")
        if response.status >= 400:
            raise ProviderRefused(f"sandbox refused the query ({response.status})")
        if response.status != 200:
            raise UnexpectedAnswer(f"sandbox query answered {response.status}")
        if len(body) > MAX_ANSWER_BYTES:
            raise UnexpectedAnswer("sandbox query answer is too large")
        verify_sandbox_signature(
            self._secret,
            response.headers.get("Sandbox-Signature"),
            body,
            now=int(time.time()),
            tolerance=SIGNATURE_TOLERANCE,
        )
        return body

    @staticmethod
    def _parse(body: bytes) -> _Answer:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise UnexpectedAnswer("sandbox query answer is not JSON") from None
        try:
            return _Answer.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise UnexpectedAnswer(f"sandbox query answer: {where}: {first['msg']}") from None
