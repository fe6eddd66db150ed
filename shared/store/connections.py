"""Connections table: who watches which order over the order page's WebSocket (docs/push.md).

Three kinds of item, each keyed to spread (one partition per connection, order or client):
- `conn#<connection id>` / `conn`: the connection, what it watches, its message bucket (GCRA, as in
  shared/store/rate.py: `tat` is when the bucket is full again) and where its client slot is;
- `client#<HMAC of the client key>` / `slot#<n>`: one of the client address's `cap` connections;
- `order#<order id>` / `slot#<n>`: one of the order's `cap` watchers; the push function queries
  this partition, so a status change costs one read whoever watches.

Caps are exact under concurrency: a slot is taken with one conditional put (free = absent or past its
`until`), as the limits table's tickets are. A connection whose $disconnect is lost frees its slots at
its `until` (the longest a connection lives), and DynamoDB's TTL (`expires`) removes its items later.

Every write is safe to repeat (DESIGN.md): a slot's retried put is refused and the next read finds the
slot held by the same connection (taken); a message's bucket write is conditional on the `tat` it read
and also writes the call's token, so a retried write is refused and the read finds the token
(admitted once); a release is conditional on the connection that holds the slot.

Client addresses are stored only as an HMAC under ORDER_TOKEN_SECRET, never as they are.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from shared.settings import settings
from shared.store.errors import condition_failed
from shared.store.rate import Bucket

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
    tat = NumberAttribute(null=True)  # ms since the epoch: when its message bucket is full again
    last = UnicodeAttribute(null=True)  # the token of the write that last took a message token


@dataclass(frozen=True)
class Connection:
    """A connection as recorded, after one of its messages was counted."""

    connection_id: str
    until: int
    order_id: str | None = None  # the order it watches, if any
    admitted: bool = True  # False: the message was over the connection's rate


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
                tat=0,
            ).save()
        except Exception:  # refused connect: no $disconnect will come to free the slot, so free it now
            _release(client_pk, slot, connection_id)
            raise
        return True

    def admit_message(self, connection_id: str, rate: Bucket, now: float) -> Connection | None:
        """The connection, having taken a token of its message bucket (`admitted` False if none was
        left: nothing taken); None if no such connection is live."""
        token, now_ms = secrets.token_hex(8), int(now * 1000)
        for _ in range(ROUNDS):
            try:
                item = ConnectionItem.get(_connection_key(connection_id), CONNECTION_SK, consistent_read=True)
            except ConnectionItem.DoesNotExist:
                return None
            connection = Connection(connection_id, int(item.until), item.order_id)
            if item.last == token:  # this call's write applied; its answer was lost, the retry refused
                return connection
            if item.until <= now:
                return None
            seen = int(item.tat or 0)
            tat = max(seen, now_ms) + rate.interval_ms
            if tat - now_ms > rate.burst * rate.interval_ms:
                return Connection(connection_id, int(item.until), item.order_id, admitted=False)
            try:
                item.update(
                    actions=[ConnectionItem.tat.set(tat), ConnectionItem.last.set(token)],
                    condition=ConnectionItem.tat == seen,
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                continue  # another message of the same connection, or gone: read it again
            return connection
        return Connection(connection_id, 0, None, admitted=False)  # a flood of its own messages

    def watch(self, connection: Connection, order_id: str, cap: int, now: int) -> bool:
        """The connection watches `order_id` (and no other order) until its `until`; False if `cap`
        other connections watch it already, or the connection is gone."""
        if connection.order_id == order_id:
            return True
        order_pk = _order_key(order_id)
        slot = _take_slot(order_pk, connection.connection_id, cap, now, connection.until)
        if slot is None:
            return False
        try:
            ConnectionItem(_connection_key(connection.connection_id), CONNECTION_SK).update(
                actions=[ConnectionItem.order_id.set(order_id), ConnectionItem.order_slot.set(slot)],
                condition=ConnectionItem.pk.exists(),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            _release(order_pk, slot, connection.connection_id)  # disconnected meanwhile
            return False
        if connection.order_id is not None:  # it watched another order: that one no more
            self._unwatch(connection.order_id, connection.connection_id)
        return True

    def watchers(self, order_id: str, now: int) -> list[str]:
        """The connections watching the order now (a strongly consistent read: a watch just recorded
        is seen by the next status change)."""
        rows = ConnectionItem.query(_order_key(order_id), consistent_read=True)
        return [row.connection_id for row in rows if row.connection_id and row.until > now]

    def forget(self, connection_id: str, order_id: str | None = None) -> None:
        """Remove the connection, its client slot and its watch (also of `order_id`, when the caller
        found it watching that order). Repeating it, or an unknown id, does nothing."""
        if order_id is not None:
            self._unwatch(order_id, connection_id)
        key = _connection_key(connection_id)
        try:
            item = ConnectionItem.get(key, CONNECTION_SK, consistent_read=True)
        except ConnectionItem.DoesNotExist:
            return
        if item.order_id is not None and item.order_id != order_id:
            self._unwatch(item.order_id, connection_id)
        if item.client and item.client_slot:
            _release(item.client, item.client_slot, connection_id)
        item.delete()

    def _unwatch(self, order_id: str, connection_id: str) -> None:
        order_pk = _order_key(order_id)
        for row in ConnectionItem.query(order_pk, consistent_read=True):
            if row.connection_id == connection_id:
                _release(order_pk, row.sk, connection_id)


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
