"""Sending one notification to its merchant's webhook: signed, once per attempt, retried by SQS.

The signature is Stripe's scheme: `Miaofa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>`. A failed attempt (no answer, or anything but 2xx) is retried by the notify queue
after an exponential backoff (BACKOFF_BASE_SECONDS × 2^(attempt-1), at most MAX_BACKOFF_SECONDS);
after MAX_ATTEMPTS the queue dead-letters it (template.yaml, NotifyQueue's maxReceiveCount).

Each attempt resolves the URL's host again, checks every address with the rule the URL was set with
(shared/notify.py webhook_target) and connects to those addresses only, never to a later DNS answer
(rebinding); a host that is no longer public fails the attempt (ProviderRefused), retried as any other.
"""

import hashlib
import hmac
import socket
import sys
import threading
from enum import StrEnum
from functools import cache
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import SSL_KEYWORDS
from urllib3.util.connection import create_connection

from shared.errors import Invalid
from shared.notify import (
    MerchantWebhook,
    Notification,
    Resolve,
    UnresolvedHost,
    WebhookTarget,
    resolve_host,
    webhook_target,
)
from shared.providers import ProviderRefused, ProviderUnavailable
from shared.providers.http import call
from shared.settings import settings
from shared.store.webhooks import WebhookStore

BACKOFF_BASE_SECONDS = 30
MAX_BACKOFF_SECONDS = 15 * 60
MAX_ATTEMPTS = 8  # NotifyQueue's maxReceiveCount: the attempt after which SQS dead-letters
TIMEOUT = urllib3.Timeout(connect=2, read=5)
SUCCESS = tuple(range(200, 300))
MAX_POOLS = 10  # merchants' hosts a warm process keeps connections to (as urllib3's PoolManager)


class Sent(StrEnum):
    SENT = "sent"
    NO_WEBHOOK = "no_webhook"  # the merchant has none (or turned it off): nothing to do
    NOT_WANTED = "not_wanted"  # the merchant's webhook does not take this event type


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The Miaofa-Signature header's value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def retry_delay(attempt: int) -> int:
    """Seconds before the next attempt after attempt number `attempt` (1, 2, ...) failed; 0 after
    the last one, so SQS dead-letters it at once instead of after another backoff."""
    if attempt >= MAX_ATTEMPTS:
        return 0
    return int(min(MAX_BACKOFF_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1)))


class WebhookPools:
    """Connection pools to merchants' webhooks, each connecting only to addresses checked for the
    request it serves. The URL's host stays the Host header, the TLS server name and the name its
    certificate must be for: only the address connected to is pinned."""

    def __init__(self, local_mode: bool, resolve: Resolve = resolve_host, **pool_kw: Any) -> None:
        self._local_mode = local_mode
        self._resolve = resolve
        self._pool_kw = pool_kw  # timeout, retries, TLS settings (ca_certs in tests)
        self._pools: dict[tuple[Any, ...], urllib3.HTTPConnectionPool] = {}  # least recently used first
        self._lock = threading.Lock()

    def pool_for(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        """The pool for `url`, connecting to the addresses its host has now, and the request target.
        ProviderRefused if one of them is not public; ProviderUnavailable if the host does not resolve."""
        try:
            target = webhook_target(url, self._local_mode, self._resolve)
        except UnresolvedHost:
            raise ProviderUnavailable("merchant webhook host does not resolve") from None
        except Invalid as refused:  # its message names no host or address, only the rule
            raise ProviderRefused(f"merchant webhook not sent: {refused.message}") from None
        key = (target.scheme, target.host, target.port, tuple(sorted(target.addresses)))  # DNS rotates
        with self._lock:
            pool = self._pools.pop(key, None) or self._new_pool(target)
            self._pools[key] = pool
            while len(self._pools) > MAX_POOLS:
                self._pools.pop(next(iter(self._pools))).close()
        return pool, target.request_target

    def _new_pool(self, target: WebhookTarget) -> urllib3.HTTPConnectionPool:
        if target.scheme == "https":
            return _PinnedHTTPSPool(target.host, target.port, addresses=target.addresses, **self._pool_kw)
        plain = {name: value for name, value in self._pool_kw.items() if name not in SSL_KEYWORDS}
        return _PinnedHTTPPool(target.host, target.port, addresses=target.addresses, **plain)


class _PinnedHTTPConnection(HTTPConnection):
    """A connection to the checked addresses (`addresses`), never to a new answer for its host."""

    def __init__(self, *args: Any, addresses: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.addresses = addresses

    def _new_conn(self) -> socket.socket:
        return _connect(self, self.addresses)


class _PinnedHTTPSConnection(_PinnedHTTPConnection, HTTPSConnection):
    pass


class _PinnedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


def _connect(connection: HTTPConnection, addresses: tuple[str, ...]) -> socket.socket:
    """urllib3's own connect (HTTPConnection._new_conn), to each checked address in turn as it would
    try each DNS answer, instead of resolving the host again."""
    failure: Exception = NewConnectionError(connection, "Failed to establish a new connection: no address")
    for address in addresses:
        try:
            sock = create_connection(
                (address, connection.port),
                connection.timeout,
                source_address=connection.source_address,
                socket_options=connection.socket_options,
            )
        except TimeoutError:
            failure = ConnectTimeoutError(
                connection,
                f"Connection to {connection.host} timed out. (connect timeout={connection.timeout})",
            )
        except OSError as error:
            failure = NewConnectionError(connection, f"Failed to establish a new connection: {error}")
        else:
            sys.audit("http.client.connect", connection, connection.host, connection.port)
            return sock
    raise failure


@cache
def pool() -> WebhookPools:
    # No retries here: each attempt is one request, the queue does the retrying (with backoff).
    return WebhookPools(
        settings().local_mode,
        timeout=TIMEOUT,
        retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
    )


def send(notification: Notification, webhooks: WebhookStore, http: WebhookPools, now: int) -> Sent:
    """POST the notification to its merchant's webhook, connecting only to the addresses its host was
    just checked to have; raises (ProviderError) for any failure, ProviderRefused for a host that is not
    (or no longer) public."""
    webhook = webhooks.recent_webhook(notification.merchant_id)
    if webhook is None:
        return Sent.NO_WEBHOOK
    if not webhook.wants(notification.type):
        return Sent.NOT_WANTED
    body = notification.body()
    pinned, request_target = http.pool_for(webhook.url)
    call(
        pinned,
        "merchant webhook",
        "POST",
        request_target,
        _headers(webhook, notification, body, now),
        body,
        SUCCESS,
    )
    return Sent.SENT


def _headers(webhook: MerchantWebhook, notification: Notification, body: bytes, now: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "miaofa-webhooks/1",
        "Miaofa-Signature": signature(webhook.secret.get_secret_value(), body, now),
        "Miaofa-Event-Id": notification.event_id,
        "Miaofa-Event-Type": notification.type,
        "Idempotency-Key": notification.event_id,
    }
