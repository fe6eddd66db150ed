"""The order page's WebSocket (docs/push.md): a connection is admitted within its client's cap, then
watches one order, authorised exactly as `GET /api/orders/{id}` is (shared/access.py). A connection
sends one message, its watch: any other, or a second watch, is refused and closes it — the message cap.

Every answer is posted through the management API (`SocketChannel`), none is a route response: the
`watching` answer must follow the watch's write (a status change after it is then pushed), and one
path for every message keeps the page and the local runtime simple. A refusal posts its error and
closes the connection. A wrong token, another order's token and an unknown order get the same
`order_not_found`; nothing here logs or answers a token, and no message holds a code.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import access
from shared.clients import client_key
from shared.ids import is_id
from shared.ports import ConnectionPort, OrderPort, SocketChannel
from shared.settings import Settings

ErrorCode = Literal["order_not_found", "rate_limited", "bad_request"]


class WatchRequest(BaseModel):
    """The one message a page sends, right after the socket opens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["watch"]
    order_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=1024, repr=False)


@dataclass(frozen=True)
class Limits:
    per_client: int  # live connections of one client address
    per_order: int  # live connections watching one order
    connection_seconds: int  # the longest a connection is kept (API Gateway's: 2 hours)
    token_secret: str  # magic links' signing secret

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(
            per_client=settings.socket_connections_per_client,
            per_order=settings.socket_connections_per_order,
            connection_seconds=settings.socket_connection_seconds,
            token_secret=settings.order_token_secret,
        )


Watched = Literal["watching", "order_not_found", "rate_limited", "bad_request", "gone"]


def connect(
    connection_id: str,
    source_ip: str,
    connections: ConnectionPort,
    channel: SocketChannel,
    limits: Limits,
    now: datetime,
) -> bool:
    """Admit a new connection unless its client address has `per_client` live ones (connections whose
    $disconnect was lost are asked after, and their slots freed, before refusing)."""
    at, client = int(now.timestamp()), client_key(source_ip)
    until = at + limits.connection_seconds
    if connections.connect(connection_id, client, limits.per_client, at, until):
        return True
    if not connections.free_gone(connections.client_key(client), channel.alive, at):
        return False
    return connections.connect(connection_id, client, limits.per_client, at, until)


def watch(
    connection_id: str,
    body: str | None,
    connections: ConnectionPort,
    orders: OrderPort,
    channel: SocketChannel,
    limits: Limits,
    now: datetime,
) -> Watched:
    """The connection watches the order its message names, or is told why not and closed."""
    try:
        request = WatchRequest.model_validate_json(body or "")
    except ValidationError:
        return _refuse(connection_id, "bad_request", channel)
    order = orders.get(request.order_id) if is_id(request.order_id, "ord") else None
    if order is None or not access.opens(order, request.token, now, limits.token_secret):
        return _refuse(connection_id, "order_not_found", channel)
    at = int(now.timestamp())
    outcome = connections.watch(connection_id, order.order_id, limits.per_order, at)
    if outcome == "full" and connections.free_gone(
        connections.order_partition(order.order_id), channel.alive, at
    ):
        outcome = connections.watch(connection_id, order.order_id, limits.per_order, at)  # lost $disconnects
    if outcome == "full":
        return _refuse(connection_id, "rate_limited", channel)  # the order's cap: the page polls instead
    if outcome == "refused":
        return _refuse(connection_id, "bad_request", channel)  # not connected, or its second message
    # The status read after the watch was recorded: a change before it was not pushed, and the page
    # reads the order again when this status is not the one it shows.
    current = orders.get(order.order_id) or order
    answer = {"type": "watching", "order_id": order.order_id, "status": current.status.value}
    if not channel.post(connection_id, answer):
        connections.forget(connection_id)
        return "gone"
    return "watching"


def unknown_message(connection_id: str, channel: SocketChannel) -> Watched:
    """Any other message ($default): refused, and the connection closed."""
    return _refuse(connection_id, "bad_request", channel)


def disconnect(connection_id: str, connections: ConnectionPort) -> None:
    """The connection closed: it no longer counts or watches."""
    connections.forget(connection_id)


def _refuse(connection_id: str, code: ErrorCode, channel: SocketChannel) -> Watched:
    """Tell the page why, and close the connection ($disconnect then forgets it)."""
    if channel.post(connection_id, {"type": "error", "code": code}):
        channel.close(connection_id)
    return code
