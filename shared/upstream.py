"""miaofa's client for a merchant's top-up upstream: the protocol of docs/topup.md.

Every call ends in one of four outcomes, so a caller cannot mistake one for another:
- an answer `succeeded` (credited; its `receipt` is for the buyer) or `processing` (accepted: a
  callback or the status endpoint will tell);
- an answer `failed` with `retryable` True: nothing was applied, sending the same request again is safe;
- an answer `failed` with `retryable` False: nothing was applied and nothing will be;
- OutcomeUnknown: the request may or may not have been applied (a timeout, a reset connection, a 5xx,
  an answer that is not signed by the upstream): ask `status` before sending anything again.

A POST is sent once per call (urllib3 never retries it: a retried POST is a blind one); the status
GET is retried once. Nothing here logs; no error message holds a secret, a buyer's field or a receipt.
"""

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import urllib3
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError

from shared.errors import BadInput, Invalid, InvalidSignature
from shared.notify import MAX_URL_LENGTH, Resolve, check_webhook_url, resolve_host
from shared.outbound import PinnedPools
from shared.providers import ProviderRefused, ProviderUnavailable
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature
from shared.settings import settings

REQUEST_SIGNATURE = "Miaofa-Signature"  # on miaofa's requests
ANSWER_SIGNATURE = "Upstream-Signature"  # on the upstream's answers and callbacks
TOLERANCE_SECONDS = 300  # a signed timestamp further than this from the receiver's clock is refused
MAX_ANSWER_BYTES = 64 * 1024
MAX_TEXT = 500  # a receipt or message longer than this is cut (an answer is never refused for it)
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # it is a path segment of the status URL
_KEY = re.compile(KEY_PATTERN)
SEND_RETRIES = urllib3.Retry(total=0, redirect=0, raise_on_status=False)
STATUS_RETRIES = urllib3.Retry(  # a Retry-After of an hour must not hold a delivery
    total=1, redirect=0, backoff_factor=0.2, status_forcelist=(502, 503, 504), allowed_methods={"GET"},
    respect_retry_after_header=False, raise_on_status=False,
)  # fmt: skip
Status = Literal["succeeded", "processing", "failed", "unknown"]


class OutcomeUnknown(Exception):
    """The request may or may not have been applied: ask `status` before sending it again."""


class Upstream(BaseModel):
    """A merchant's upstream as miaofa calls it: where, the shared secret, and how long to wait."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(max_length=MAX_URL_LENGTH)
    secret: SecretStr = Field(min_length=16)  # never in a repr or a log line
    connect_timeout: float = Field(default=2.0, ge=0.1, le=5.0)
    read_timeout: float = Field(default=5.0, ge=0.1, le=10.0)

    @field_validator("base_url")
    @classmethod
    def _base(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or "#" in url:
            raise ValueError("an http(s) URL without query or fragment")
        return url.rstrip("/")

    def longest_send_seconds(self) -> float:
        """The longest a `send` waits (one attempt); `status` waits at most twice this and 0.2 s."""
        return self.connect_timeout + self.read_timeout


class TopupRequest(BaseModel):
    """One order line to credit: the body of `POST {base}/topups`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idempotency_key: str = Field(pattern=KEY_PATTERN)  # unique per order line
    order_id: str = Field(min_length=1, max_length=100)
    sku: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=10_000)
    fields: dict[str, str] = Field(default_factory=dict, repr=False)  # the buyer's input: personal data
    callback_url: str = Field(max_length=MAX_URL_LENGTH)

    def body(self) -> bytes:
        return json.dumps(self.model_dump(), ensure_ascii=False, separators=(",", ":")).encode()


class UpstreamAnswer(BaseModel):
    """What the upstream says about one idempotency key (an answer, a status or a callback)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    idempotency_key: str
    status: Status
    receipt: str | None = Field(default=None, repr=False)  # shown to the buyer: never logged
    retryable: bool = False  # for `failed`: nothing was applied and the same key may be sent again
    message: str | None = Field(default=None, repr=False)  # for the merchant; may repeat buyer input

    @field_validator("receipt", "message", mode="before")
    @classmethod
    def _cut(cls, text: object) -> object:
        return text[:MAX_TEXT] if isinstance(text, str) else text


def check_base_url(url: str, local_mode: bool, resolve: Resolve = resolve_host) -> str:
    """An upstream's base URL as a merchant registers it, or Invalid (code invalid_url): the rules of a
    merchant webhook's URL (https, public addresses; loopback too in local mode), and no query."""
    try:
        base = Upstream.model_validate({"base_url": url, "secret": "x" * 16}).base_url
    except ValidationError:
        raise Invalid("url: an http(s) URL without query or fragment", code="invalid_url") from None
    check_webhook_url(f"{base}/topups", local_mode, resolve)
    return base


@cache
def pools() -> PinnedPools:
    return PinnedPools(settings().local_mode, who="upstream", retries=SEND_RETRIES)


def send(
    upstream: Upstream, request: TopupRequest, now: int, http: PinnedPools | None = None
) -> UpstreamAnswer:
    """POST the top-up once. Raises OutcomeUnknown when it may have been applied (see the module)."""
    body = request.body()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": request.idempotency_key,
        REQUEST_SIGNATURE: sandbox_signature(upstream.secret.get_secret_value(), body, now),
    }
    key = request.idempotency_key
    try:
        reply = _exchange(upstream, "POST", "/topups", headers, body, SEND_RETRIES, http)
    except _NotSent as not_sent:
        return UpstreamAnswer(
            idempotency_key=key, status="failed", retryable=not_sent.retryable, message=str(not_sent)
        )
    code, answer = reply.status, _signed_answer(upstream, key, reply, now)
    if 200 <= code < 300 and answer is not None and answer.status != "unknown":
        return answer
    if 400 <= code < 500 and (answer is None or answer.status == "failed"):  # refused: nothing applied
        refused = f"upstream refused the request ({code})"
        return answer or UpstreamAnswer(
            idempotency_key=key, status="failed", retryable=code == 429, message=refused
        )
    # a 5xx, 1xx or 3xx; a 2xx not signed for this request; a 4xx that says it did something
    raise OutcomeUnknown(f"upstream answered {code}, not a signed answer for this request")


def status(
    upstream: Upstream, idempotency_key: str, now: int, http: PinnedPools | None = None
) -> UpstreamAnswer:
    """What the upstream says became of `idempotency_key` (`unknown`: it never accepted it);
    OutcomeUnknown if it did not say so in a signed answer."""
    if not _KEY.fullmatch(idempotency_key):
        raise ValueError("not an idempotency key")
    path = f"/topups/{idempotency_key}"
    signed = sandbox_signature(upstream.secret.get_secret_value(), path.encode(), now)
    try:
        reply = _exchange(upstream, "GET", path, {REQUEST_SIGNATURE: signed}, None, STATUS_RETRIES, http)
    except _NotSent as not_sent:
        raise OutcomeUnknown(f"status not asked: {not_sent}") from None
    answer = _signed_answer(upstream, idempotency_key, reply, now) if reply.status < 500 else None
    if answer is None:
        raise OutcomeUnknown(f"upstream status answer ({reply.status}) is not a signed answer for this key")
    return answer


def verify_callback(
    secret: str | SecretStr, headers: Mapping[str, str], body: bytes, now: int
) -> UpstreamAnswer:
    """The upstream's callback, if signed with `secret` within the tolerance window: InvalidSignature
    if not, BadInput if it is not a callback. The caller checks its key is one of the order's."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    header = next((v for name, v in headers.items() if name.lower() == ANSWER_SIGNATURE.lower()), None)
    verify_sandbox_signature(key, header, body, now, TOLERANCE_SECONDS, ANSWER_SIGNATURE)
    try:
        answer = UpstreamAnswer.model_validate_json(body)
    except ValidationError as invalid:
        where = ".".join(str(part) for part in invalid.errors(include_input=False)[0]["loc"]) or "body"
        raise BadInput(f"not an upstream callback: {where}") from None
    if answer.status == "unknown":
        raise BadInput("not an upstream callback: status")
    return answer


# ---------- one exchange ----------


class _Reply(NamedTuple):
    status: int
    headers: Mapping[str, str]  # urllib3's: names compared without case
    body: bytes


class _NotSent(Exception):
    """Nothing reached the upstream (a refused or unresolved host, no connection)."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _exchange(
    upstream: Upstream,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    retries: urllib3.Retry,
    http: PinnedPools | None,
) -> _Reply:
    try:
        pool, target = (http or pools()).pool_for(upstream.base_url + path)
    except ProviderRefused as refused:
        raise _NotSent(str(refused), retryable=False) from None
    except ProviderUnavailable as unresolved:
        raise _NotSent(str(unresolved), retryable=True) from None
    headers = {**headers, "User-Agent": "miaofa-topup/1"}
    timeout = urllib3.Timeout(connect=upstream.connect_timeout, read=upstream.read_timeout)
    try:
        response = pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            retries=retries,
            redirect=False,
            timeout=timeout,
            preload_content=False,
        )
        try:
            data = response.read(MAX_ANSWER_BYTES + 1)
            if len(data) > MAX_ANSWER_BYTES:
                response.close()  # the rest is unread: this connection cannot be reused
        finally:
            response.release_conn()
    except HTTPError as error:
        cause = error.reason if isinstance(error, MaxRetryError) else error
        if isinstance(cause, ConnectTimeoutError):  # also NewConnectionError: no byte was sent
            raise _NotSent(f"upstream not reachable: {type(cause).__name__}", retryable=True) from None
        raise OutcomeUnknown(f"upstream {method} got no answer: {type(cause).__name__}") from None
    return _Reply(response.status, response.headers, data)


def _signed_answer(upstream: Upstream, key: str, reply: _Reply, now: int) -> UpstreamAnswer | None:
    """The reply's body if the upstream signed it (within the window) and it answers for `key`."""
    if len(reply.body) > MAX_ANSWER_BYTES:
        return None
    try:
        verify_sandbox_signature(
            upstream.secret.get_secret_value(),
            reply.headers.get(ANSWER_SIGNATURE),
            reply.body,
            now,
            TOLERANCE_SECONDS,
            ANSWER_SIGNATURE,
        )
        answer = UpstreamAnswer.model_validate_json(reply.body)
    except (InvalidSignature, ValidationError):
        return None
    return answer if answer.idempotency_key == key else None
