"""The connections table (shared/store/connections.py) and its fake keep one contract: each scenario
runs on FakeConnections and on the real store on the embedded AWS. And the caps hold under real
threads: simultaneous connects of one client, and watches of one order, never exceed them."""

import secrets
import threading

import pytest

from shared.ports import ConnectionPort
from shared.store.connections import ConnectionStore
from shared.store.rate import Bucket
from tests.fakes import FakeConnections

NOW = 1_748_858_400
UNTIL = NOW + 7200
RATE = Bucket(per_minute=6, burst=3)


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


def test_watchers_per_order_are_capped_and_a_connection_watches_one_order(store):
    order, other, client = fresh("ord"), fresh("ord"), fresh("client")
    first, second = fresh("c"), fresh("c")
    for connection_id in (first, second):
        assert store.connect(connection_id, client, 5, NOW, UNTIL)
    one = store.admit_message(first, RATE, NOW)
    two = store.admit_message(second, RATE, NOW)
    assert one is not None and two is not None and one.admitted and one.order_id is None
    assert store.watch(one, order, 1, NOW)
    assert store.watch(one, order, 1, NOW)  # again: still watching
    assert not store.watch(two, order, 1, NOW)
    assert store.watchers(order, NOW) == [first]
    moved = store.admit_message(first, RATE, NOW)
    assert moved is not None and moved.order_id == order
    assert store.watch(moved, other, 1, NOW)
    assert store.watchers(order, NOW) == [] and store.watchers(other, NOW) == [first]
    assert store.watch(two, order, 1, NOW)
    store.forget(second, order)
    assert store.watchers(order, NOW) == []
    assert store.watchers(other, UNTIL) == []  # past the connection's lifetime


def test_messages_per_connection_are_a_token_bucket(store):
    connection_id = fresh("c")
    assert store.admit_message(connection_id, RATE, NOW) is None  # never connected
    assert store.connect(connection_id, fresh("client"), 5, NOW, UNTIL)
    admitted = [store.admit_message(connection_id, RATE, NOW) for _ in range(RATE.burst + 1)]
    assert [c.admitted for c in admitted if c is not None] == [True] * RATE.burst + [False]
    later = store.admit_message(connection_id, RATE, NOW + 10)  # one interval (10 s) later: one more
    assert later is not None and later.admitted
    assert store.admit_message(connection_id, RATE, UNTIL) is None  # its lifetime is over


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
            connection = store.admit_message(ids[n], RATE, NOW)
            results[n] = connection is not None and store.watch(connection, order, cap, NOW)

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
