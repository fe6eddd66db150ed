"""Outbound calls to providers: urllib3 with explicit timeouts, bounded retries and a size cap.

Retries cover I/O errors and 502/503/504 for every method: each call the shop makes is idempotent at
the provider (queries; creations and refunds carry the shop's idempotency key or order number).
One retry, so a call takes at most ~12 s (2 × (2 s connect + 4 s read)): within the storefront's
15 s, two calls within the merchant function's 29 s, and the reconcile run keeps its time budget.
"""

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from pydantic import BaseModel, ValidationError

from shared.providers import ProviderRefused, ProviderUnavailable, UnexpectedAnswer

TIMEOUT = urllib3.Timeout(connect=2, read=4)
RETRIES = urllib3.Retry(
    total=1,
    backoff_factor=0.2,
    status_forcelist=[502, 503, 504],
    allowed_methods=None,  # every method: see the module docstring
    raise_on_status=False,
)
MAX_ANSWER_BYTES = 1 << 20
Parsed = TypeVar("Parsed", bound=BaseModel)


def new_pool(timeout: urllib3.Timeout = TIMEOUT, retries: urllib3.Retry = RETRIES) -> urllib3.PoolManager:
    return urllib3.PoolManager(timeout=timeout, retries=retries)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def call(
    http: urllib3.PoolManager | urllib3.HTTPConnectionPool,  # one host's pool: `url` is then a path
    who: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None = None,
    accept: tuple[int, ...] = (200,),
) -> Answer:
    """Send one request; ProviderUnavailable for no answer or a 5xx, ProviderRefused for a 4xx,
    UnexpectedAnswer for a status outside `accept` or a body over MAX_ANSWER_BYTES."""
    try:
        response = http.request(
            method, url, headers=headers, body=body, redirect=False, preload_content=False
        )
        try:
            data = response.read(MAX_ANSWER_BYTES + 1)
            if len(data) > MAX_ANSWER_BYTES:
                response.close()  # the rest is unread: this connection cannot be reused
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as error:
        cause = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) else error
        raise ProviderUnavailable(f"{who} call failed: {type(cause).__name__}") from None
    except ValueError:  # http.client refusing a header value: never repeat it, it may hold a key
        raise ProviderRefused(f"{who} request could not be sent: a header value is malformed") from None
    if response.status >= 500 or response.status == 429:  # 429: rate limited, asked again later
        raise ProviderUnavailable(f"{who} answered {response.status}")
    if response.status in accept:
        if len(data) > MAX_ANSWER_BYTES:
            raise UnexpectedAnswer(f"{who} answer is too large")
        return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, data)
    if response.status in (401, 403):
        raise ProviderRefused(f"{who} refused the request ({response.status}): check its credentials")
    if 400 <= response.status < 500:
        raise ProviderRefused(f"{who} refused the request ({response.status})")
    raise UnexpectedAnswer(f"{who} answered {response.status}")


def parse_body(
    model: type[Parsed], body: bytes, who: str, error: type[Exception] = UnexpectedAnswer
) -> Parsed:
    """A JSON body as `model`, or `error` naming the first field that is off (never its value)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise error(f"{who} sent a body that is not JSON") from None
    return validate_data(model, data, who, error)


def validate_data(
    model: type[Parsed], data: Any, who: str, error: type[Exception] = UnexpectedAnswer
) -> Parsed:
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        first = invalid.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise error(f"{who} {model.__name__.strip('_').lower()}: {where}: {first['msg']}") from None
