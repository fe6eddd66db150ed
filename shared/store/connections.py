"""Connections table: who watches which order over the order page's WebSocket (docs/push.md).

Three kinds of item, each keyed to spread (one partition per connection, order or client):
- `conn#<connection id>` / `conn`: the connection, where its client slot is, and the one order it
  watches (a connection watches once: docs/push.md "Limits");
- `client#<HMAC of the client key>` / `slot#<n>`: one of the client address's `cap` connections;
- `order#<order id>` / `slot#<n>`: one of the order's `cap` watchers; the push function queries
  this partition, so a status change costs one read whoever watches.

Caps are exact under concurrency: a slot is taken with one conditional put (free = absent or past its
`until`), as the limits table's tickets are. A connection whose $disconnect is lost frees its slots at
its `until` (the longest a connection lives), and DynamoDB's TTL (`expires`) removes its items later;
a connection's own item is left to TTL at $disconnect too (a TTL delete costs no write).

Every write is safe to repeat (DESIGN.md): a slot's retried put is refused and the next read finds the
slot held by the same connection (taken); the watch's write is conditional on the connection watching
nothing or this order (a retry passes); a release is conditional on the connection that holds the slot.

Client addresses are stored only as an HMAC under ORDER_TOKEN_SECRET, never as they are.
"""

import hashlib
import hmac
from collections.abc import Callable
from typing import Final, Literal

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from shared.settings import settings
from shared.store.errors import condition_failed

CONNECTION_SK: Final = "conn"
ROUNDS: Final = 3  # read-and-take rounds when others take the same slots at the same moment
KEPT_AFTER: Final = 86_400  # TTL housekeeping: items go a day after their `until`


class ConnectionItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    connection_id = UnicodeAttribute(null=True)  # a slot: the connection holding it
    until = NumberAttribute()  # s since the epoch: the connection is over by then, whatever happens
    expires = NumberAttribute()  # TTL: housekeeping only, never relied on
    # The connection item only:
    client = UnicodeAttribute(null=True)  # its client slot's partition key
    client_slot = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute(null=True)  # the order it watches
    order_slot = UnicodeAttribute(null=True)


WatchOutcome = Literal["watching", "full", "refused"]  # refused: not connected, or watching already


def _connection_key(connection_id: str) -> str:
    return f"conn#{connection_id}"


def _order_key(order_id: str) -> str:
    return f"order#{order_id}"


class ConnectionStore:
    def __init__(self, secret: str | None = None, table: str | None = None) -> None:
        ConnectionItem.Meta.table_name = table or settings().connections_table
        self._secret = (secret if secret is not None else settings().order_token_secret).encode()

    def client_key(self, client: str) -> str:
        """The partition of `client`'s slots: the client key only as an HMAC."""
        digest = hmac.new(self._secret, f"socket:{client}".encode(), hashlib.sha256).hexdigest()
        return f"client#{digest}"

    def connect(self, connection_id: str, client: str, cap: int, now: int, until: int) -> bool:
        """Record a new connection from `client` (a client key) until `until`; False (nothing
        recorded) if the client has `cap` live connections."""
        client_pk = self.client_key(client)
        slot = _take_slot(client_pk, connection_id, cap, now, until)
        if slot is None:
            return False
        try:
            ConnectionItem(
                _connection_key(connection_id),
                CONNECTION_SK,
                until=until,
                expires=until + KEPT_AFTER,
                client=client_pk,
                client_slot=slot,
            ).save()
        except Exception:  # refused connect: no $disconnect will come to free the slot, so free it now
            _release(client_pk, slot, connection_id)
            raise
        return True

    def watch(self, connection_id: str, order_id: str, cap: int, now: int) -> WatchOutcome:
        """The connection watches `order_id` until its `until`: `full` if `cap` others watch it,
        `refused` if the connection is not live or watches an order already (it watches once)."""
        key = _connection_key(connection_id)
        try:
            item = ConnectionItem.get(key, CONNECTION_SK, consistent_read=True)
        except ConnectionItem.DoesNotExist:
            return "refused"
        if item.until <= now or item.order_id is not None:
            return "refused"
        order_pk = _order_key(order_id)
        slot = _take_slot(order_pk, connection_id, cap, now, int(item.until))
        if slot is None:
            return "full"
        try:
            item.update(
                actions=[ConnectionItem.order_id.set(order_id), ConnectionItem.order_slot.set(slot)],
                condition=ConnectionItem.pk.exists()
                & (ConnectionItem.order_id.does_not_exist() | (ConnectionItem.order_id == order_id)),
            )
        except UpdateError as error:
            _release(order_pk, slot, connection_id)  # the slot is not kept for a watch not recorded
            if not condition_failed(error):
                raise
            return "refused"  # another watch of this connection won, or it was forgotten meanwhile
        return "watching"

    def order_partition(self, order_id: str) -> str:
        """The partition of the order's watcher slots."""
        return _order_key(order_id)

    def free_gone(self, partition: str, alive: Callable[[str], bool], now: int) -> int:
        """Free the live slots of `partition` whose connection is gone (its $disconnect was lost: API
        Gateway delivers it best effort); how many. Asked only when a cap is reached, so a page that
        reconnects after lost $disconnects is not refused for slots nobody holds."""
        freed = 0
        for row in ConnectionItem.query(partition, consistent_read=True):
            if row.connection_id and row.until > now and not alive(row.connection_id):
                _release(partition, row.sk, row.connection_id)
                freed += 1
        return freed

    def watchers(self, order_id: str, now: int) -> list[str]:
        """The connections watching the order now (a strongly consistent read: a watch just recorded
        is seen by the next status change)."""
        rows = ConnectionItem.query(_order_key(order_id), consistent_read=True)
        return [row.connection_id for row in rows if row.connection_id and row.until > now]

    def unwatch(self, order_id: str, connection_id: str) -> None:
        """The connection no longer watches the order (it is gone: the push was answered 410)."""
        order_pk = _order_key(order_id)
        for row in ConnectionItem.query(order_pk, consistent_read=True):
            if row.connection_id == connection_id:
                _release(order_pk, row.sk, connection_id)

    def forget(self, connection_id: str) -> None:
        """Free the connection's slots ($disconnect); its own item is left to TTL. Repeating it, or an
        unknown id, changes nothing."""
        try:
            item = ConnectionItem.get(_connection_key(connection_id), CONNECTION_SK, consistent_read=True)
        except ConnectionItem.DoesNotExist:
            return
        if item.order_id and item.order_slot:
            _release(_order_key(item.order_id), item.order_slot, connection_id)
        if item.client and item.client_slot:
            _release(item.client, item.client_slot, connection_id)


def _take_slot(pk: str, connection_id: str, cap: int, now: int, until: int) -> str | None:
    """One of the `cap` slots of `pk` for the connection (the one it holds already, if any): its sort
    key, or None if every slot is held by a live connection."""
    for _ in range(ROUNDS):
        held = {row.sk: row for row in ConnectionItem.query(pk, consistent_read=True)}
        for row in held.values():
            if row.connection_id == connection_id and row.until > now:
                return row.sk  # taken already (a repeat, or this call's retried put)
        slots = (f"slot#{n}" for n in range(cap))  # the first free one: a cap may be large (local mode)
        free = next((sk for sk in slots if sk not in held or held[sk].until <= now), None)
        if free is None:
            return None
        item = ConnectionItem(pk, free, connection_id=connection_id, until=until, expires=until + KEPT_AFTER)
        try:
            item.save(condition=ConnectionItem.pk.does_not_exist() | (ConnectionItem.until <= now))
        except PutError as error:
            if not condition_failed(error):
                raise
            try:
                taken = ConnectionItem.get(pk, free, consistent_read=True)  # by another, or this put
            except ConnectionItem.DoesNotExist:
                continue  # freed meanwhile: read again
            if taken.connection_id == connection_id:  # whose answer was lost (the SDK's retry refused)
                return free
            continue  # another connection took it first: read again
        return free
    return None  # contended past ROUNDS: as good as full


def _release(pk: str, sk: str, connection_id: str) -> None:
    """Free the slot if this connection still holds it."""
    try:
        ConnectionItem(pk, sk).delete(condition=ConnectionItem.connection_id == connection_id)
    except DeleteError as error:
        if not condition_failed(error):
            raise
