"""The connections table (shared/store/connections.py) and its fake keep one contract: each scenario
runs on FakeConnections and on the real store on the embedded AWS. And the caps hold under real
threads: simultaneous connects of one client, and watches of one order, never exceed them."""

import secrets
import threading

import pytest

from shared.ports import ConnectionPort
from shared.store.connections import ConnectionStore
from tests.fakes import FakeConnections

NOW = 1_748_858_400
UNTIL = NOW + 7200


@pytest.fixture(params=["fake", "real"])
def store(request) -> ConnectionPort:
    if request.param == "fake":
        return FakeConnections()
    request.getfixturevalue("runtime")  # the embedded AWS, its tables made from template.yaml
    return ConnectionStore(secret=secrets.token_hex(16), table="ConnectionsTable")


def fresh(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_connections_per_client_are_capped_a_repeat_is_no_new_one_and_forgetting_frees(store):
    client, ids = fresh("client"), [fresh("c") for _ in range(3)]
    assert store.connect(ids[0], client, 2, NOW, UNTIL)
    assert store.connect(ids[0], client, 2, NOW, UNTIL)  # a repeat (the SDK's retry): the same slot
    assert store.connect(ids[1], client, 2, NOW, UNTIL)
    assert not store.connect(ids[2], client, 2, NOW, UNTIL)
    store.forget(ids[0])
    store.forget(ids[0])
    assert store.connect(ids[2], client, 2, NOW, UNTIL)
    assert store.connect(fresh("c"), client, 2, UNTIL, UNTIL + 7200)  # the others' lifetime is over


def test_watchers_per_order_are_capped_and_a_connection_watches_once(store):
    order, other, client = fresh("ord"), fresh("ord"), fresh("client")
    first, second, third = fresh("c"), fresh("c"), fresh("c")
    for connection_id in (first, second, third):
        assert store.connect(connection_id, client, 5, NOW, UNTIL)
    assert store.watch(fresh("c"), order, 1, NOW) == "refused"  # never connected
    assert store.watch(first, order, 1, NOW) == "watching"
    assert store.watch(second, order, 1, NOW) == "full"
    assert store.watchers(order, NOW) == [first]
    assert store.watch(first, order, 1, NOW) == "refused"  # its one watch is spent: again, or
    assert store.watch(first, other, 1, NOW) == "refused"  # another order
    assert store.watchers(order, NOW) == [first] and store.watchers(other, NOW) == []
    assert store.watch(second, other, 1, NOW) == "watching"  # a refusal for `full` spent nothing
    store.forget(first)
    store.forget(first)
    assert store.watchers(order, NOW) == []
    assert store.watch(third, order, 1, NOW) == "watching"
    store.unwatch(order, third)  # the push's 410
    store.unwatch(order, third)
    assert store.watchers(order, NOW) == []
    assert store.watchers(other, UNTIL) == []  # past the connection's lifetime
    assert store.watch(fresh("c"), order, 1, UNTIL) == "refused"


def test_a_watch_past_the_connections_lifetime_is_refused(store):
    connection_id = fresh("c")
    assert store.connect(connection_id, fresh("client"), 5, NOW, UNTIL)
    assert store.watch(connection_id, fresh("ord"), 5, UNTIL) == "refused"


@pytest.mark.parametrize("kind", ["connect", "watch"])
def test_simultaneous_takers_never_exceed_a_cap(runtime, kind):
    store, cap, takers = ConnectionStore(secret=secrets.token_hex(16), table="ConnectionsTable"), 3, 12
    client, order = fresh("client"), fresh("ord")
    ids = [fresh("c") for _ in range(takers)]
    if kind == "watch":
        for n, connection_id in enumerate(ids):
            assert store.connect(connection_id, f"{client}-{n}", 1, NOW, UNTIL)
    barrier, results = threading.Barrier(takers), [False] * takers

    def take(n: int) -> None:
        barrier.wait()
        if kind == "connect":
            results[n] = store.connect(ids[n], client, cap, NOW, UNTIL)
        else:
            results[n] = store.watch(ids[n], order, cap, NOW) == "watching"

    threads = [threading.Thread(target=take, args=(n,)) for n in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= sum(results) <= cap
    if kind == "watch":
        assert sorted(store.watchers(order, NOW)) == sorted(
            i for i, ok in zip(ids, results, strict=True) if ok
        )


def test_slots_of_connections_that_are_gone_are_freed_on_asking(store):
    client, order = fresh("client"), fresh("ord")
    first, second, third = fresh("c"), fresh("c"), fresh("c")
    for connection_id in (first, second):
        assert store.connect(connection_id, client, 2, NOW, UNTIL)
        assert store.watch(connection_id, order, 2, NOW) == "watching"
    gone = {first}  # its $disconnect was lost

    assert store.free_gone(store.client_key(client), lambda c: c not in gone, NOW) == 1
    assert store.free_gone(store.order_partition(order), lambda c: c not in gone, NOW) == 1
    assert store.free_gone(store.order_partition(order), lambda c: c not in gone, NOW) == 0  # once
    assert store.connect(third, client, 2, NOW, UNTIL)
    assert store.watch(third, order, 2, NOW) == "watching"
    assert sorted(store.watchers(order, NOW)) == sorted([second, third])
