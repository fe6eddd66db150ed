"""The socket and push handlers read API Gateway's WebSocket events and DynamoDB stream events as AWS
sends them (tests/events/) and hand them to their use cases; here on fakes."""

import json
from dataclasses import dataclass

import pytest

from functions.push import handler as push_handler
from functions.socket import handler as socket_handler
from shared import adapters
from shared.orders import Status
from shared.settings import Settings
from tests.fakes import REQUIRED_SETTINGS, FakeConnections, FakePorts, FakeSockets, raises
from tests.support import event

CONFIG = Settings.model_validate({**REQUIRED_SETTINGS, "SOCKET_CONNECTIONS_PER_CLIENT": 1})


@dataclass
class Context:
    function_name: str = "SocketFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:SocketFunction"
    aws_request_id: str = "req-1"


@pytest.fixture
def wired(fakes: FakePorts, monkeypatch) -> tuple[FakeConnections, FakeSockets]:
    connections, sockets = FakeConnections(), FakeSockets()
    monkeypatch.setattr(adapters, "connections", lambda: connections)
    monkeypatch.setattr(adapters, "sockets", lambda: sockets)
    monkeypatch.setattr(adapters, "orders", lambda: fakes.orders)
    monkeypatch.setattr(socket_handler, "settings", lambda: CONFIG)
    monkeypatch.setattr(socket_handler, "utcnow", fakes.clock)
    monkeypatch.setattr(push_handler, "utcnow", fakes.clock)
    return connections, sockets


def route(name: str, connection_id: str, ip: str = "203.0.113.7", body: str | None = None) -> dict:
    base = event("websocket_watch" if body is not None else "websocket_connect")
    base["requestContext"].update(routeKey=name, connectionId=connection_id, identity={"sourceIp": ip})
    if body is not None:
        base["body"] = body
    return base


def test_connect_watch_push_and_disconnect_through_the_handlers(fakes, wired, capsys):
    connections, sockets = wired
    order = fakes.add_order(fakes.add_product(codes=1), Status.PAID, order_id="ord_00000000000000000a01")
    assert socket_handler.lambda_handler(event("websocket_connect"), Context()) == {"statusCode": 200}
    # The client's cap (1 here): a second connection from the same address is refused at the handshake.
    assert socket_handler.lambda_handler(route("$connect", "other"), Context()) == {"statusCode": 429}
    assert socket_handler.lambda_handler(event("websocket_watch"), Context()) == {"statusCode": 200}
    connection_id = event("websocket_connect")["requestContext"]["connectionId"]
    assert sockets.messages(connection_id) == [
        {"type": "watching", "order_id": order.order_id, "status": "PAID"}
    ]

    stream = event("dynamodb_orders_stream")
    assert push_handler.lambda_handler(stream, Context()) == {"batchItemFailures": []}
    assert sockets.messages(connection_id)[-1] == {
        "type": "order",
        "order_id": order.order_id,
        "status": "DELIVERED",
    }

    socket_handler.lambda_handler(route("$disconnect", connection_id), Context())
    assert connections.slots == {}  # its client's slot and its order's, freed
    logged = capsys.readouterr().out
    assert "token-ord_" not in logged and "buyer@example.com" not in logged  # tokens and images never logged


def test_anything_but_watch_is_a_bad_request(fakes, wired):
    _, sockets = wired
    socket_handler.lambda_handler(route("$connect", "c1"), Context())
    socket_handler.lambda_handler(route("$default", "c1", body=json.dumps({"action": "sing"})), Context())
    assert sockets.messages("c1") == [{"type": "error", "code": "bad_request"}] and sockets.closed == ["c1"]


def test_a_record_whose_watchers_cannot_be_read_is_reported_for_retry(fakes, wired):
    connections, _ = wired
    connections.before("watchers", raises(TimeoutError()))
    answer = push_handler.lambda_handler(event("dynamodb_orders_stream"), Context())
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["200", "400", "500"]
