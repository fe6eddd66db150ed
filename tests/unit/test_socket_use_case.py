"""The order page's WebSocket (docs/push.md), with fakes: a connection watches its order with the order's
access token or a magic link, and with nothing else; the caps hold and a connection sends one message;
every refusal is an error message and a close; no message ever carries a token or a code."""

import json
from datetime import timedelta

import pytest

from functions.socket.watch import Limits, connect, disconnect, unknown_message, watch
from shared import links
from shared.orders import Order, Status
from tests.fakes import FakeConnections, FakePorts, FakeSockets, fake_ports

SECRET = "k3Jq9wXz2Lm8Pn4Rv7TyQ2xqv8Zr4mN7"
LIMITS = Limits(per_client=3, per_order=2, connection_seconds=7200, token_secret=SECRET)
IP = "203.0.113.7"
OPEN = FakeSockets()  # the management API, for tests where every connection is still open


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports()


@pytest.fixture
def connections() -> FakeConnections:
    return FakeConnections()


@pytest.fixture
def sockets() -> FakeSockets:
    return FakeSockets()


def token_of(order: Order) -> str:
    return f"token-{order.order_id}"  # what tests.fakes gives each order as its access token


def body(order_id: str, token: str) -> str:
    return json.dumps({"action": "watch", "order_id": order_id, "token": token})


def connected(fakes: FakePorts, connections: FakeConnections, connection_id: str, ip: str = IP) -> str:
    assert connect(connection_id, ip, connections, OPEN, LIMITS, fakes.clock())
    return connection_id


def send(fakes, connections, sockets, connection_id: str, message: str | None):
    return watch(connection_id, message, connections, fakes.orders, sockets, LIMITS, fakes.clock())


def test_the_orders_access_token_watches_it_and_the_answer_is_its_status(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1), Status.PAID)
    conn = connected(fakes, connections, "c1")
    assert send(fakes, connections, sockets, conn, body(order.order_id, token_of(order))) == "watching"
    assert sockets.messages(conn) == [{"type": "watching", "order_id": order.order_id, "status": "PAID"}]
    assert connections.watchers(order.order_id, int(fakes.clock().timestamp())) == [conn]
    assert sockets.closed == []


def test_a_magic_link_for_the_order_watches_it_until_it_expires(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    link = links.order_link_token(order.order_id, fakes.clock(), SECRET)
    conn = connected(fakes, connections, "c1")
    assert send(fakes, connections, sockets, conn, body(order.order_id, link)) == "watching"
    fakes.clock.advance(links.LIFETIME + timedelta(seconds=1))
    late = connected(fakes, connections, "c2")
    assert send(fakes, connections, sockets, late, body(order.order_id, link)) == "order_not_found"


def test_a_wrong_token_another_orders_token_and_an_unknown_order_get_the_same_answer(
    fakes, connections, sockets
):
    product = fakes.add_product(codes=2)
    mine, other = fakes.add_order(product), fakes.add_order(product)
    other_link = links.order_link_token(other.order_id, fakes.clock(), SECRET)
    attempts = {
        "wrong token": body(mine.order_id, token_of(mine) + "x"),
        "another order's token": body(mine.order_id, token_of(other)),
        "another order's link": body(mine.order_id, other_link),
        "unknown order": body(fakes.new_id("ord"), token_of(mine)),
        "not an order id": body("../ord", token_of(mine)),
    }
    for n, (why, message) in enumerate(attempts.items()):
        conn = connected(fakes, connections, f"c{n}")
        assert send(fakes, connections, sockets, conn, message) == "order_not_found", why
        assert sockets.messages(conn) == [{"type": "error", "code": "order_not_found"}], why
        assert conn in sockets.closed, why
        disconnect(conn, connections)  # API Gateway's $disconnect, after the close
    now = int(fakes.clock().timestamp())
    assert connections.watchers(mine.order_id, now) == [] and connections.watchers(other.order_id, now) == []


def test_a_message_that_is_not_a_watch_is_a_bad_request_and_closes(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    bad = [
        None,
        "",
        "not json",
        json.dumps({"action": "watch", "order_id": order.order_id}),
        json.dumps({"action": "watch", "order_id": order.order_id, "token": token_of(order), "more": 1}),
        json.dumps({"action": "watch", "order_id": order.order_id, "token": ["x"]}),
    ]
    for n, message in enumerate(bad):
        conn = connected(fakes, connections, f"c{n}")
        assert send(fakes, connections, sockets, conn, message) == "bad_request"
        assert sockets.messages(conn) == [{"type": "error", "code": "bad_request"}]
        assert conn in sockets.closed
        disconnect(conn, connections)
    other = connected(fakes, connections, "default")
    assert unknown_message(other, sockets) == "bad_request"
    assert sockets.messages(other) == [{"type": "error", "code": "bad_request"}]


def test_a_connection_not_admitted_by_connect_cannot_watch(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    assert send(fakes, connections, sockets, "never", body(order.order_id, token_of(order))) == "bad_request"
    assert connections.watchers(order.order_id, int(fakes.clock().timestamp())) == []


def test_connections_per_client_are_capped_and_freed_by_disconnect_or_their_lifetime(fakes, connections):
    for n in range(LIMITS.per_client):
        connected(fakes, connections, f"c{n}")
    assert not connect("over", IP, connections, OPEN, LIMITS, fakes.clock())
    assert connect("elsewhere", "198.51.100.1", connections, OPEN, LIMITS, fakes.clock())
    # An IPv6 client is its /64: another address in it is the same client.
    for n in range(LIMITS.per_client):
        connected(fakes, connections, f"v6-{n}", f"2001:db8:1:2::{n + 1}")
    assert not connect("v6-over", "2001:db8:1:2:ffff::1", connections, OPEN, LIMITS, fakes.clock())
    disconnect("c0", connections)
    disconnect("c0", connections)  # $disconnect twice: nothing more
    assert connect("again", IP, connections, OPEN, LIMITS, fakes.clock())
    assert not connect("over", IP, connections, OPEN, LIMITS, fakes.clock())
    fakes.clock.advance(seconds=LIMITS.connection_seconds)  # their $disconnect was lost
    assert connect("later", IP, connections, OPEN, LIMITS, fakes.clock())


def test_a_client_at_its_cap_after_lost_disconnects_gets_the_slots_of_its_gone_connections(
    fakes, connections, sockets
):
    for n in range(LIMITS.per_client):
        assert connect(f"c{n}", IP, connections, sockets, LIMITS, fakes.clock())
    sockets.gone.update({"c0", "c1"})  # closed, and their $disconnect never came

    assert connect("new", IP, connections, sockets, LIMITS, fakes.clock())  # c0's or c1's slot
    assert connect("newer", IP, connections, sockets, LIMITS, fakes.clock())
    assert not connect("newest", IP, connections, sockets, LIMITS, fakes.clock())  # c2 is open
    assert connections.client_connections(IP) == LIMITS.per_client


def test_an_order_at_its_watcher_cap_after_lost_disconnects_takes_a_new_watcher(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    for n in range(LIMITS.per_order):
        conn = connected(fakes, connections, f"c{n}", f"198.51.100.{n + 1}")
        assert send(fakes, connections, sockets, conn, body(order.order_id, token_of(order))) == "watching"
    sockets.gone.add("c0")  # the page reloaded; the old socket's $disconnect was lost

    again = connected(fakes, connections, "again", "198.51.100.100")
    assert send(fakes, connections, sockets, again, body(order.order_id, token_of(order))) == "watching"
    assert sorted(connections.watchers(order.order_id, int(fakes.clock().timestamp()))) == ["again", "c1"]


def test_watchers_per_order_are_capped(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    for n in range(LIMITS.per_order):
        conn = connected(fakes, connections, f"c{n}", f"198.51.100.{n + 1}")
        assert send(fakes, connections, sockets, conn, body(order.order_id, token_of(order))) == "watching"
    over = connected(fakes, connections, "over", "198.51.100.99")
    assert send(fakes, connections, sockets, over, body(order.order_id, token_of(order))) == "rate_limited"
    assert sockets.messages(over) == [{"type": "error", "code": "rate_limited"}] and "over" in sockets.closed
    disconnect("c0", connections)
    again = connected(fakes, connections, "again", "198.51.100.100")
    assert send(fakes, connections, sockets, again, body(order.order_id, token_of(order))) == "watching"


def test_a_connection_sends_one_message_and_a_second_one_closes_it(fakes, connections, sockets):
    product = fakes.add_product(codes=2)
    first, second = fakes.add_order(product), fakes.add_order(product)
    conn = connected(fakes, connections, "c1")
    assert send(fakes, connections, sockets, conn, body(first.order_id, token_of(first))) == "watching"
    for again in (body(first.order_id, token_of(first)), body(second.order_id, token_of(second))):
        assert send(fakes, connections, sockets, conn, again) == "bad_request"
        assert sockets.messages(conn)[-1] == {"type": "error", "code": "bad_request"}
    assert conn in sockets.closed
    now = int(fakes.clock().timestamp())
    assert connections.watchers(first.order_id, now) == [conn]
    assert connections.watchers(second.order_id, now) == []


def test_the_watching_answer_tells_the_status_read_after_the_watch_was_recorded(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    conn = connected(fakes, connections, "c1")
    # The payment lands between the token check and the watch's write: the stream's push found no
    # watcher, so the answer itself must say PAID.
    connections.after("watch", lambda *_: fakes.orders.transition(order, "payment.succeeded", fakes.clock()))
    assert send(fakes, connections, sockets, conn, body(order.order_id, token_of(order))) == "watching"
    assert sockets.messages(conn) == [{"type": "watching", "order_id": order.order_id, "status": "PAID"}]


def test_disconnect_forgets_what_the_connection_watched(fakes, connections, sockets):
    order = fakes.add_order(fakes.add_product(codes=1))
    conn = connected(fakes, connections, "c1")
    send(fakes, connections, sockets, conn, body(order.order_id, token_of(order)))
    disconnect(conn, connections)
    assert connections.watchers(order.order_id, int(fakes.clock().timestamp())) == []
    assert connections.client_connections(IP) == 0


def test_no_message_carries_a_token_or_a_code(fakes, connections, sockets):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product, Status.DELIVERED)
    conn = connected(fakes, connections, "c1")
    send(fakes, connections, sockets, conn, body(order.order_id, token_of(order)))
    wrong = connected(fakes, connections, "c2")
    send(fakes, connections, sockets, wrong, body(order.order_id, "guess"))
    for _, message in sockets.posted:
        assert set(message) <= {"type", "order_id", "status", "code"}
        assert token_of(order) not in json.dumps(message) and "guess" not in json.dumps(message)
