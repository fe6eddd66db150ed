"""The order page's WebSocket in memory: the connections table (ConnectionPort) with its exact caps,
slots freed at their `until`, one watch per connection and idempotent forgets, and the management API
(SocketChannel), which keeps every message posted and can be told a connection is gone."""

import json
from collections.abc import Callable
from dataclasses import dataclass

from shared.store.connections import WatchOutcome
from tests.fakes.hooks import Hooked, hooked


@dataclass
class _Live:
    client: str
    client_slot: int
    until: int
    order_id: str | None = None


class FakeConnections(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.connections: dict[str, _Live] = {}
        self.slots: dict[tuple[str, int], tuple[str, int]] = {}  # (partition, n) -> (connection, until)

    def _take(self, partition: str, connection_id: str, cap: int, now: int, until: int) -> int | None:
        for (pk, n), (holder, held_until) in self.slots.items():
            if pk == partition and holder == connection_id and held_until > now:
                return n
        for n in range(cap):
            held = self.slots.get((partition, n))
            if held is None or held[1] <= now:
                self.slots[(partition, n)] = (connection_id, until)
                return n
        return None

    def _release(self, partition: str, connection_id: str) -> None:
        for key in [
            k for k, (holder, _) in self.slots.items() if k[0] == partition and holder == connection_id
        ]:
            del self.slots[key]

    @hooked
    def connect(self, connection_id: str, client: str, cap: int, now: int, until: int) -> bool:
        slot = self._take(f"client#{client}", connection_id, cap, now, until)
        if slot is None:
            return False
        self.connections[connection_id] = _Live(f"client#{client}", slot, until)
        return True

    @hooked
    def watch(self, connection_id: str, order_id: str, cap: int, now: int) -> WatchOutcome:
        live = self.connections.get(connection_id)
        if live is None or live.until <= now or live.order_id is not None:
            return "refused"
        if self._take(f"order#{order_id}", connection_id, cap, now, live.until) is None:
            return "full"
        live.order_id = order_id
        return "watching"

    @hooked
    def watchers(self, order_id: str, now: int) -> list[str]:
        return [
            holder
            for (pk, _), (holder, until) in sorted(self.slots.items())
            if pk == f"order#{order_id}" and until > now
        ]

    @hooked
    def unwatch(self, order_id: str, connection_id: str) -> None:
        self._release(f"order#{order_id}", connection_id)

    @hooked
    def forget(self, connection_id: str) -> None:
        live = self.connections.get(connection_id)  # kept, as the real one leaves it to TTL
        if live is None:
            return
        if live.order_id is not None:
            self._release(f"order#{live.order_id}", connection_id)
        self._release(live.client, connection_id)

    def client_key(self, client: str) -> str:
        return f"client#{client}"

    def order_partition(self, order_id: str) -> str:
        return f"order#{order_id}"

    @hooked
    def free_gone(self, partition: str, alive: Callable[[str], bool], now: int) -> int:
        gone = [
            (key, holder)
            for key, (holder, until) in sorted(self.slots.items())
            if key[0] == partition and until > now and not alive(holder)
        ]
        for key, _ in gone:
            del self.slots[key]
        return len(gone)

    def client_connections(self, client: str) -> int:
        """Slots held for `client` (a client key), live or not yet freed."""
        return sum(1 for (pk, _) in self.slots if pk == f"client#{client}")


class FakeSockets(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.posted: list[tuple[str, dict[str, str]]] = []  # (connection, message), oldest first
        self.closed: list[str] = []
        self.gone: set[str] = set()  # connections that answer 410

    @hooked
    def post(self, connection_id: str, message: dict[str, str]) -> bool:
        if connection_id in self.gone:
            return False
        json.dumps(message)  # what the real one sends: JSON, or it fails here too
        self.posted.append((connection_id, dict(message)))
        return True

    @hooked
    def alive(self, connection_id: str) -> bool:
        return connection_id not in self.gone

    @hooked
    def close(self, connection_id: str) -> None:
        self.closed.append(connection_id)
        self.gone.add(connection_id)

    def messages(self, connection_id: str) -> list[dict[str, str]]:
        return [message for to, message in self.posted if to == connection_id]
