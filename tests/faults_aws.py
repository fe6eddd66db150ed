"""Faults of the real AWS that moto never shows, for tests against the local runtime: an answer lost
after its request applied, and throttling.

Both are botocore `before-send` hooks carried by every client made after this module is imported
(tests/conftest.py imports it first): boto3's, PynamoDB's (one per model, made lazily) and those of
the handlers running in the local runtime's threads. They do nothing unless a test opens a fault:

    with lost_answer("UpdateItem", on_table(settings().limits_table)) as fault:
        ...                       # the first matching request applies, then its answer is lost
    assert fault.hits == 1 and fault.seen == 2   # the SDK's retry sent it again

    with throttled("PutItem", on_table(settings().orders_table), times=None):
        ...                       # every matching request: ProvisionedThroughputExceededException

    with lost_answer("UpdateItem", when, times=None, attempt=1):
        ...                       # every call's first attempt loses its answer; its retry gets through

    with watched("GetItem", on_table(settings().shop_table, pk="product#…")) as reads:
        ...                       # nothing happens to them; reads.seen counts them

A lost answer sends the request to the server itself, then raises botocore's ConnectionClosedError,
which the SDK's standard retry handler retries: the retry is the SDK's own, with the same body.
A throttle answers HTTP 400 with the service's error type; the SDK backs off and retries it, and
once its attempts are spent the caller gets the ClientError (or PynamoDB's wrapper of it).
"""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectionClosedError
from botocore.handlers import BUILTIN_HANDLERS
from botocore.httpsession import URLLib3Session

Match = Callable[[dict[str, Any]], bool]
THROTTLE = "ProvisionedThroughputExceededException"


@dataclass
class Fault:
    """One open fault; `seen` counts the matching requests (the SDK's retries too), `hits` those it hit."""

    kind: str  # "lost" or "throttle"
    service: str  # botocore's service id, hyphenated: "dynamodb", "sqs"
    operation: str  # "UpdateItem", "SendMessage", ...
    when: Match
    times: int | None  # None: every matching request
    attempt: int | None = None  # only the SDK's attempt with this number (1: the first) matches
    code: str = THROTTLE
    seen: int = 0
    hits: int = 0


_open: list[Fault] = []
_lock = threading.Lock()
_http = URLLib3Session()


def anything(_: dict[str, Any]) -> bool:
    return True


def on_table(table: str, **key: str) -> Match:
    """DynamoDB requests on `table` whose Key (or Item) has these string attributes, e.g. pk="ord_…"."""

    def match(params: dict[str, Any]) -> bool:
        named = params.get("Key") or params.get("Item") or {}
        return params.get("TableName") == table and all(
            named.get(name, {}).get("S") == value for name, value in key.items()
        )

    return match


def key_prefix(table: str, attribute: str, prefix: str) -> Match:
    """DynamoDB requests on `table` whose Key (or Item) string `attribute` starts with `prefix`."""

    def match(params: dict[str, Any]) -> bool:
        named = params.get("Key") or params.get("Item") or {}
        return params.get("TableName") == table and named.get(attribute, {}).get("S", "").startswith(prefix)

    return match


@contextmanager
def lost_answer(
    operation: str,
    when: Match = anything,
    times: int | None = 1,
    service: str = "dynamodb",
    attempt: int | None = None,
) -> Iterator[Fault]:
    """Matching requests (the first `times`, or all) apply at the server, then their answer is lost."""
    yield from _opened(Fault("lost", service, operation, when, times, attempt))


@contextmanager
def throttled(
    operation: str,
    when: Match = anything,
    times: int | None = None,
    service: str = "dynamodb",
    attempt: int | None = None,
    code: str = THROTTLE,
) -> Iterator[Fault]:
    """Matching requests (the first `times`, or all) are refused with `code`, applying nothing.

    A request is one attempt: the SDK makes 3 per call (shared/aws.py), so times=3 fails one call."""
    yield from _opened(Fault("throttle", service, operation, when, times, attempt, code))


@contextmanager
def watched(operation: str, when: Match = anything, service: str = "dynamodb") -> Iterator[Fault]:
    """Matching requests are only counted (`seen`, the SDK's retries too); none is touched."""
    yield from _opened(Fault("watch", service, operation, when, times=0))


def _opened(fault: Fault) -> Iterator[Fault]:
    with _lock:
        _open.append(fault)
    try:
        yield fault
    finally:
        with _lock:
            _open.remove(fault)


def _hit(service: str, operation: str, request: AWSPreparedRequest) -> Fault | None:
    with _lock:
        candidates = [f for f in _open if (f.service, f.operation) == (service, operation)]
        if not candidates:
            return None
        params, attempt = _params(request), _attempt(request)
        for fault in candidates:
            if fault.attempt in (None, attempt) and fault.when(params):
                fault.seen += 1
                if fault.times is None or fault.hits < fault.times:
                    fault.hits += 1
                    return fault
    return None


def _params(request: AWSPreparedRequest) -> dict[str, Any]:
    """A JSON-protocol request's parameters (DynamoDB, SQS); {} for other protocols."""
    try:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        params = json.loads(body or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return params if isinstance(params, dict) else {}


def _attempt(request: AWSPreparedRequest) -> int:
    """Which attempt of its call a request is (botocore's `amz-sdk-request: attempt=2; max=3`)."""
    header = request.headers.get("amz-sdk-request", b"")
    text = header.decode() if isinstance(header, bytes) else header
    fields = dict(part.strip().partition("=")[::2] for part in text.split(";") if "=" in part)
    return int(fields.get("attempt", 1))


def _before_send(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
    if not _open:
        return None
    service, operation = event_name.split(".", 2)[1:]  # before-send.<service>.<operation>
    fault = _hit(service, operation, request)
    if fault is None:
        return None
    if fault.kind == "lost":
        _http.send(request)  # applied at the server...
        raise ConnectionClosedError(endpoint_url=request.url, request=request)  # ...and the answer lost
    return _refusal(request, service, fault.code)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _refusal(request: AWSPreparedRequest, service: str, code: str) -> AWSResponse:
    error_type = f"com.amazonaws.dynamodb.v20120810#{code}" if service == "dynamodb" else code
    body = json.dumps({"__type": error_type, "message": "Rate of requests exceeds the allowed throughput."})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected-throttle"}
    return AWSResponse(request.url, 400, headers, _Body(body.encode()))


def attach(client: Any) -> None:
    """Carry the faults on a client made before this module was imported."""
    client.meta.events.register("before-send", _before_send, unique_id="tests.faults_aws")


BUILTIN_HANDLERS.append(("before-send", _before_send))  # every client made from now on carries it
