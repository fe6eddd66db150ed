"""HTTP to hosts a merchant named (its webhook, its top-up upstream): public addresses only, pinned.

Each request resolves the URL's host again, checks every address with the rule the URL was set with
(shared/notify.py webhook_target) and connects to those addresses only, never to a later DNS answer
(rebinding); a host that is no longer public is refused (ProviderRefused) before anything is sent.
"""

import socket
import sys
import threading
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.poolmanager import SSL_KEYWORDS
from urllib3.util.connection import create_connection

from shared.errors import Invalid
from shared.notify import Resolve, UnresolvedHost, WebhookTarget, resolve_host, webhook_target
from shared.providers import ProviderRefused, ProviderUnavailable

MAX_POOLS = 10  # merchants' hosts a warm process keeps connections to (as urllib3's PoolManager)


class PinnedPools:
    """Connection pools to merchants' hosts, each connecting only to addresses checked for the
    request it serves. The URL's host stays the Host header, the TLS server name and the name its
    certificate must be for: only the address connected to is pinned. `who` names the peer in errors."""

    def __init__(
        self, local_mode: bool, resolve: Resolve = resolve_host, *, who: str, **pool_kw: Any
    ) -> None:
        self._local_mode = local_mode
        self._resolve = resolve
        self._who = who
        self._pool_kw = pool_kw  # timeout, retries, TLS settings (ca_certs in tests)
        self._pools: dict[tuple[Any, ...], urllib3.HTTPConnectionPool] = {}  # least recently used first
        self._lock = threading.Lock()

    def pool_for(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        """The pool for `url`, connecting to the addresses its host has now, and the request target.
        ProviderRefused if one of them is not public; ProviderUnavailable if the host does not resolve."""
        try:
            target = webhook_target(url, self._local_mode, self._resolve)
        except UnresolvedHost:
            raise ProviderUnavailable(f"{self._who} host does not resolve") from None
        except Invalid as refused:  # its message names no host or address, only the rule
            raise ProviderRefused(f"{self._who} not sent: {refused.message}") from None
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
