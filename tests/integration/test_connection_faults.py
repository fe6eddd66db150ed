"""The connection caps under the real AWS's faults (tests/faults_aws.py), on the embedded AWS: a slot
whose put applied but whose answer was lost is still the connection's, and a connect that fails after
taking its client's slot gives the slot back (no $disconnect ever comes for a refused connect)."""

import secrets

import pytest
from pynamodb.exceptions import PutError

from shared.store import connections
from shared.store.connections import ConnectionStore
from tests.faults_aws import key_prefix, lost_answer, throttled

TABLE = "ConnectionsTable"  # the local runtime names the table after its logical id
NOW = 1_748_858_400
UNTIL = NOW + 7200


@pytest.fixture
def store(runtime) -> ConnectionStore:
    return ConnectionStore(secret=secrets.token_hex(16), table=TABLE)


def fresh(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_a_slot_put_whose_answer_was_lost_in_the_last_round_is_still_the_connections(store, monkeypatch):
    monkeypatch.setattr(connections, "ROUNDS", 1)  # the last round is the first: no later read finds it
    client, first, second = fresh("client"), fresh("c"), fresh("c")

    with lost_answer("PutItem", key_prefix(TABLE, "pk", "client#")) as fault:
        assert store.connect(first, client, 1, NOW, UNTIL)  # the SDK's retry was refused: it was ours
    assert fault.hits == 1

    assert not store.connect(second, client, 1, NOW, UNTIL)  # the one slot is held, by `first`
    store.forget(first)
    assert store.connect(second, client, 1, NOW, UNTIL)  # and `first` let it go


def test_a_connect_that_fails_after_taking_its_slot_gives_the_slot_back(store):
    client, first, second = fresh("client"), fresh("c"), fresh("c")

    with throttled("PutItem", key_prefix(TABLE, "pk", "conn#")), pytest.raises(PutError):
        store.connect(first, client, 1, NOW, UNTIL)  # its own item cannot be written: refused

    assert store.connect(second, client, 1, NOW, UNTIL)  # the client's one slot is free again


def test_a_watch_whose_answer_was_lost_is_recorded_once(store):
    client, order, watcher, other = fresh("client"), fresh("ord"), fresh("c"), fresh("c")
    assert store.connect(watcher, client, 2, NOW, UNTIL) and store.connect(other, client, 2, NOW, UNTIL)

    with lost_answer("UpdateItem", key_prefix(TABLE, "pk", "conn#")) as fault:
        assert store.watch(watcher, order, 1, NOW) == "watching"  # the SDK's retry passed its condition
    assert fault.hits == 1

    assert store.watchers(order, NOW) == [watcher]
    assert store.watch(other, order, 1, NOW) == "full"
    store.forget(watcher)  # and $disconnect finds the watch to free
    assert store.watch(other, order, 1, NOW) == "watching"
