"""The merchant HTTP API as `miaofa-merchant` uses it: where it is and with which key, one request, and
retries for what is safe to send again (a request that is not is sent once)."""

import argparse
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from infra.cli_support import Console, Refused, UsageError, read_local_file

PROG = "miaofa-merchant"
REQUEST_TIMEOUT = 120.0
ATTEMPTS = 8  # for an idempotent request: sending it again after a lost answer changes nothing more
ONCE = 1  # for one that is not: a second POST could make a second product or send a second event
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"import_in_progress"})  # another import, removal or export holds the product


class Unreachable(Exception):
    """No answer from the API (connection refused, reset, timed out)."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise Refused(f"the API answered {self.status} with a body that is not JSON") from None

    def error(self) -> tuple[str, str]:
        """(code, message) of an error answer: API.md's shape, or API Gateway's own `{"message"}`."""
        try:
            body = json.loads(self.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("code", "error")), str(body["error"].get("message", ""))
        if isinstance(body, dict) and "message" in body:
            return f"http_{self.status}", str(body["message"])
        return f"http_{self.status}", "no explanation given"


class Api:
    def __init__(self, url: str, key: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url, self.key, self.timeout = url.rstrip("/"), key, timeout

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Reply:
        target = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        if content_type:
            sent["Content-Type"] = content_type
        request = urllib.request.Request(target, data=body, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _lower(error.headers.items()), error.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"no answer from {self.url}: {reason}") from None

    def call(
        self,
        method: str,
        path: str,
        console: Console,
        what: str,
        attempts: int = ATTEMPTS,
        answered: Collection[int] = (),
        **kwargs: Any,
    ) -> Reply:
        """Send, retrying what is safe to retry (`attempts` ONCE: a request that is not); a refusal
        becomes Refused naming `what`, but one of the `answered` statuses, which the caller reads."""
        for attempt in range(1, attempts + 1):
            try:
                reply = self.send(method, path, **kwargs)
            except Unreachable as error:
                problem = str(error)
            else:
                if reply.status < 400 or reply.status in answered:
                    return reply
                code, message = reply.error()
                if reply.status not in RETRY_STATUSES and code not in RETRY_CODES:
                    raise Refused(f"{what}: {_refusal(reply.status, code, message)}")
                problem = f"{reply.status} {code}"
            if attempt == attempts:
                raise Refused(
                    f"{what}: failed {attempts} times (last: {problem})"
                    if attempts > 1
                    else f"{what}: failed ({problem}); not sent again, as it may have been done: check first"
                )
            delay = min(8.0, 0.5 * 2 ** (attempt - 1))
            console.note(f"{what}: {problem}; trying again in {delay:.1f} s")
            console.sleep(delay)
        raise AssertionError("unreachable")

    def json_call(
        self, method: str, path: str, console: Console, what: str, body: Any, attempts: int = ATTEMPTS
    ) -> Any:
        """A JSON body sent, the JSON answer returned."""
        reply = self.json_reply(method, path, console, what, body, attempts=attempts)
        return reply.json() if reply.body else None

    def json_reply(
        self, method: str, path: str, console: Console, what: str, body: Any, **options: Any
    ) -> Reply:
        """A JSON body sent, the answer returned (`options` as `call`'s)."""
        return self.call(
            method,
            path,
            console,
            what,
            body=json.dumps(body).encode(),
            content_type="application/json",
            **options,
        )


def quoted(value: str) -> str:
    """An id as one path segment."""
    return urllib.parse.quote(value, safe="")


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}


def _refusal(status: int, code: str, message: str) -> str:
    if status in (401, 403):
        return f"the API refused the merchant key ({status} {message or code}); check --key"
    return f"{code}: {message}"


def connect(args: argparse.Namespace, console: Console) -> Api:
    """The API and key: flags, then the environment, then the local runtime's file."""
    url = args.url or console.environ.get("MIAOFA_URL")
    key = args.key or console.environ.get("MIAOFA_MERCHANT_KEY")
    if url and not key:
        raise UsageError(f"{PROG}: --url needs --key (or MIAOFA_MERCHANT_KEY) too")
    if not url:
        missing = (
            f"no merchant API given: pass --url and --key (or set MIAOFA_URL and MIAOFA_MERCHANT_KEY), "
            f"or start `make run` (it writes {args.local_file})"
        )
        info = read_local_file(args.local_file, missing, lambda why: UsageError(f"{PROG}: {why}"))
        url, key = url or info.get("url"), key or info.get("merchant_key")
        if not (isinstance(url, str) and url and isinstance(key, str) and key):
            raise UsageError(f"{PROG}: {args.local_file} has no url or merchant_key; restart `make run`")
    assert key is not None
    _check_url(url)
    if not key.isprintable() or not key.strip() or any(c.isspace() for c in key):
        raise UsageError(f"{PROG}: the merchant key is not a single word of printable characters")
    return Api(url, key)


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{PROG}: --url must be http(s)://host[:port], not {url!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise UsageError(
            f"{PROG}: refusing to send the merchant key over plain http to {parts.hostname}; use https"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
