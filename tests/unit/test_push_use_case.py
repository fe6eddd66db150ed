"""Pushes from the orders table's stream (docs/push.md), with fakes: only status changes are pushed,
each to the connections watching that order, as `{type, order_id, status}` and nothing more; a gone
connection no longer watches; one failing post or order never costs the other orders their push."""

from functions.push.push import StatusChange, push, status_changes
from tests.fakes import FakeConnections, FakeSockets, raises
from tests.support import event

NOW = 1_748_858_400
UNTIL = NOW + 7200
A, B, C = "ord_00000000000000000a01", "ord_00000000000000000b02", "ord_00000000000000000c03"


def watching(*pairs: tuple[str, str]) -> FakeConnections:
    """Connections, each from its own client, watching the orders named."""
    connections = FakeConnections()
    for n, (connection_id, order_id) in enumerate(pairs):
        assert connections.connect(connection_id, f"client-{n}", 5, NOW, UNTIL)
        assert connections.watch(connection_id, order_id, 5, NOW) == "watching"
    connections.calls.clear()
    return connections


def test_only_records_that_change_an_orders_status_are_pushed_each_orders_latest_once():
    changes = status_changes(event("dynamodb_orders_stream")["Records"])
    # INSERT (no one watches a new order) and a MODIFY that kept the status (a retry count) are not.
    assert changes == [
        StatusChange(A, "DELIVERED", ("200", "400")),
        StatusChange(C, "EXPIRED", ("500",)),
    ]


def test_each_change_goes_to_its_orders_watchers_only_as_type_order_id_and_status():
    connections = watching(("a1", A), ("a2", A), ("b1", B))
    sockets = FakeSockets()
    pushed = push(status_changes(event("dynamodb_orders_stream")["Records"]), connections, sockets, NOW)
    assert sorted(sockets.posted) == [
        ("a1", {"type": "order", "order_id": A, "status": "DELIVERED"}),
        ("a2", {"type": "order", "order_id": A, "status": "DELIVERED"}),
    ]
    assert (pushed.sent, pushed.gone, pushed.failed_posts, pushed.failed_records) == (2, 0, 0, [])
    for _, message in sockets.posted:  # never a code: those come only from GET /api/orders/{id}
        assert set(message) == {"type", "order_id", "status"}


def test_a_gone_connection_no_longer_watches_and_the_others_still_get_theirs():
    connections = watching(("a1", A), ("a2", A))
    sockets = FakeSockets()
    sockets.gone.add("a1")
    pushed = push([StatusChange(A, "PAID", ("1",))], connections, sockets, NOW)
    assert sockets.posted == [("a2", {"type": "order", "order_id": A, "status": "PAID"})]
    assert (pushed.sent, pushed.gone) == (1, 1)
    assert connections.watchers(A, NOW) == ["a2"]
    assert connections.called("unwatch") and not connections.called("forget")  # $disconnect frees the rest


def test_a_failed_post_is_counted_not_retried_and_fails_no_record():
    connections = watching(("a1", A), ("a2", A), ("c1", C))
    sockets = FakeSockets()
    sockets.before("post", raises(ConnectionError("reset")), times=1)
    changes = [StatusChange(A, "PAID", ("1",)), StatusChange(C, "EXPIRED", ("2",))]
    pushed = push(changes, connections, sockets, NOW)
    assert pushed.failed_posts == 1 and pushed.failed_records == [] and pushed.sent == 2
    assert ("c1", {"type": "order", "order_id": C, "status": "EXPIRED"}) in sockets.posted
    assert sorted(connections.watchers(A, NOW)) == ["a1", "a2"]  # not forgotten: it may come back


def test_an_order_whose_watchers_cannot_be_read_is_retried_and_the_others_are_pushed():
    connections = watching(("a1", A), ("c1", C))
    sockets = FakeSockets()

    def unreadable(order_id: str, now: int) -> None:
        if order_id == A:
            raises(TimeoutError())()

    connections.before("watchers", unreadable)
    changes = [StatusChange(A, "DELIVERED", ("200", "400")), StatusChange(C, "EXPIRED", ("500",))]
    pushed = push(changes, connections, sockets, NOW)
    assert sorted(pushed.failed_records) == ["200", "400"]
    assert sockets.posted == [("c1", {"type": "order", "order_id": C, "status": "EXPIRED"})]


def test_watchers_past_their_connections_lifetime_are_not_posted_to():
    connections = watching(("a1", A))
    sockets = FakeSockets()
    pushed = push([StatusChange(A, "PAID", ("1",))], connections, sockets, UNTIL)
    assert sockets.posted == [] and pushed.sent == 0


def test_nothing_to_push_is_no_call_at_all():
    connections = FakeConnections()
    assert push([], connections, FakeSockets(), NOW).sent == 0
    assert connections.calls == []
