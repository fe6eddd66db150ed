"""The local runtime serves a WebSocket API as API Gateway does (docs/push.md, docs/local-runtime.md):
routes read from the template, API Gateway's WebSocket proxy events, a management API that boto3's
`apigatewaymanagementapi` client talks to, and a DynamoDB stream fed to a function as Lambda's event
source mapping feeds it. A real WebSocket client (websockets) and boto3 talk to it from outside."""

import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    DynamoDBStreamModel,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from infra.local import template
from infra.local.aws import Provisioned
from infra.local.lambdas import LocalFunction
from infra.local.runtime import LocalRuntime
from infra.local.triggers import StreamPoller
from infra.local.websocket import API_HOST, API_ID, SocketGateway
from shared.sockets import Sockets
from tests.support import poll

PUSH_TEMPLATE = Path(__file__).parent / "templates" / "push.yaml"
Behaviour = Callable[[dict[str, Any]], Any]


class Recorded(LocalFunction):
    """A function that records its events and answers as `behaviour` says (200 by default)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        super().__init__("SocketFunction", "functions.socket.handler.lambda_handler", 128, 3)
        self.events: list[dict[str, Any]] = []
        self.behaviour = behaviour or (lambda event: {"statusCode": 200})

    def invoke(self, event, context=None):
        self.events.append(event)
        return self.behaviour(event)

    def routes(self, connection: str) -> list[str]:
        return [
            e["requestContext"]["routeKey"]
            for e in self.events
            if e.get("requestContext", {}).get("connectionId") == connection
        ]


def management(endpoint: str):
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(scope="module")
def push_template() -> template.Infrastructure:
    return template.load(PUSH_TEMPLATE)


@pytest.fixture
def sockets(push_template) -> Iterator[tuple[SocketGateway, Recorded]]:
    api = push_template.sockets[0]
    function = Recorded()
    gateway = SocketGateway(api, {"SocketFunction": function})
    gateway.start()
    yield gateway, function
    gateway.stop()


def connected(gateway: SocketGateway, function: Recorded, **options: Any) -> tuple[ClientConnection, str]:
    """A client connection and its connection id (from the `$connect` event)."""
    before = len(function.events)
    socket = connect(gateway.url, open_timeout=5, **options)
    return socket, function.events[before]["requestContext"]["connectionId"]


def test_the_template_gives_the_websocket_routes_and_the_stream_trigger(push_template):
    infra = push_template
    [api] = infra.sockets
    assert api.selection_expression == "$request.body.action" and api.stage == "live"
    assert api.routes == dict.fromkeys(("$connect", "$disconnect", "watch", "$default"), "SocketFunction")
    [stream] = infra.streams
    assert (stream.table, stream.function, stream.batch_size) == ("OrdersTable", "PushFunction", 25)
    assert stream.starting_position == "LATEST" and stream.report_failures
    assert [json.loads(p) for p in stream.filters] == [{"eventName": ["INSERT", "MODIFY"]}]
    assert infra.tables["OrdersTable"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert not infra.triggers  # a stream is not a queue


def test_the_templates_urls_of_the_api_become_the_local_servers(push_template, sockets):
    gateway, _ = sockets
    resources = Provisioned(
        {"AWS::Region": "us-east-1", "AWS::URLSuffix": "amazonaws.com", "WebSocketApi": API_ID}
    )
    resources.attributes[("WebSocketApi", "ApiEndpoint")] = f"wss://{API_HOST}"
    environment = LocalRuntime._environment(push_template, resources.resolve, gateway.local_urls())
    assert environment == {
        "WEBSOCKET_URL": f"{gateway.url}live",
        "SOCKET_ORIGIN": gateway.url.rstrip("/"),
        "WEBSOCKET_ENDPOINT": gateway.endpoint,
    }


def test_connect_routes_and_disconnect_hand_api_gateway_events_to_the_function(sockets):
    gateway, function = sockets
    socket, connection = connected(gateway, function, additional_headers={"X-Probe": "yes"})
    socket.send(json.dumps({"action": "watch", "order_id": "ord_1"}))
    socket.send(json.dumps({"action": "nonsense"}))
    socket.send("not json")
    poll(lambda: len(function.routes(connection)) == 4)
    socket.close()
    poll(lambda: "$disconnect" in function.routes(connection))

    connect_event, watch, unknown, text, disconnect = function.events
    assert function.routes(connection) == ["$connect", "watch", "$default", "$default", "$disconnect"]
    parse(connect_event, APIGatewayWebSocketConnectEventModel)
    parse(disconnect, APIGatewayWebSocketDisconnectEventModel)
    for message in (watch, unknown, text):
        parse(message, APIGatewayWebSocketMessageEventModel)
    assert connect_event["headers"]["X-Probe"] == "yes"
    assert connect_event["requestContext"]["eventType"] == "CONNECT"
    assert connect_event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert watch["requestContext"]["eventType"] == "MESSAGE"
    assert json.loads(watch["body"]) == {"action": "watch", "order_id": "ord_1"}
    assert text["body"] == "not json" and not text["isBase64Encoded"]
    assert disconnect["requestContext"]["eventType"] == "DISCONNECT"
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000
    assert len({e["requestContext"]["requestId"] for e in function.events}) == 5


def test_a_connect_answered_with_an_error_status_refuses_the_connection(sockets):
    gateway, function = sockets
    function.behaviour = lambda event: {
        "statusCode": 403 if event["requestContext"]["eventType"] == "CONNECT" else 200
    }
    with pytest.raises(InvalidStatus) as refused:
        connect(gateway.url, open_timeout=5)
    assert refused.value.response.status_code == 403
    assert not gateway.open
    assert [e["requestContext"]["routeKey"] for e in function.events] == ["$connect"]  # no $disconnect


def test_a_crashing_route_answers_internal_server_error_on_the_socket(sockets):
    gateway, function = sockets

    def crash_on_messages(event):
        if event["requestContext"]["eventType"] == "MESSAGE":
            raise RuntimeError("injected crash")
        return {"statusCode": 200}

    function.behaviour = crash_on_messages
    socket, connection = connected(gateway, function)
    socket.send(json.dumps({"action": "watch"}))
    answer = json.loads(socket.recv(timeout=5))
    assert answer["message"] == "Internal server error" and answer["connectionId"] == connection
    socket.close()


def test_the_management_api_posts_gets_and_deletes_and_a_gone_connection_is_410(sockets, monkeypatch):
    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
    ):
        monkeypatch.setenv(name, value)
    gateway, function = sockets
    api = management(gateway.endpoint)
    socket, connection = connected(gateway, function, user_agent_header="probe/1.0")

    api.post_to_connection(ConnectionId=connection, Data=b'{"type": "order", "status": "PAID"}')
    assert json.loads(socket.recv(timeout=5)) == {"type": "order", "status": "PAID"}
    info = api.get_connection(ConnectionId=connection)
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "probe/1.0"}
    assert info["ConnectedAt"] <= info["LastActiveAt"]

    channel = Sockets(gateway.endpoint)  # the functions' client of the same API (shared/sockets.py)
    assert channel.alive(connection)

    api.delete_connection(ConnectionId=connection)
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=5)
    assert not channel.alive(connection)
    poll(lambda: "$disconnect" in function.routes(connection))
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection, Data=b"late")
    with pytest.raises(api.exceptions.GoneException):
        api.get_connection(ConnectionId=connection)
    with pytest.raises(api.exceptions.GoneException):
        api.delete_connection(ConnectionId=connection)
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId="bm9uZXhpc3RlbnQ=", Data=b"x")


def test_a_handler_answers_through_the_management_api_while_a_slow_one_waits(sockets):
    """A handler runs on its own thread: one stuck in a slow call does not hold up another connection."""
    gateway, function = sockets
    release = threading.Event()

    def behaviour(event):
        context = event["requestContext"]
        if context["routeKey"] == "watch":
            if json.loads(event["body"]).get("slow"):
                release.wait(10)
            management(gateway.endpoint).post_to_connection(
                ConnectionId=context["connectionId"], Data=json.dumps({"type": "watching"}).encode()
            )
        return {"statusCode": 200}

    function.behaviour = behaviour
    slow, _ = connected(gateway, function)
    quick, _ = connected(gateway, function)
    slow.send(json.dumps({"action": "watch", "slow": True}))
    quick.send(json.dumps({"action": "watch"}))
    assert json.loads(quick.recv(timeout=5)) == {"type": "watching"}  # while the slow one still waits
    release.set()
    assert json.loads(slow.recv(timeout=5)) == {"type": "watching"}
    slow.close()
    quick.close()


@pytest.fixture
def orders_stream(runtime) -> Iterator[tuple[str, str]]:
    """A fresh table with a NEW_AND_OLD_IMAGES stream in the embedded AWS (moto): (name, stream ARN)."""
    if runtime.store != "moto":
        pytest.skip("dynalite has no streams")
    name = f"test-orders-{secrets.token_hex(4)}"
    created = boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    yield name, created["TableDescription"]["LatestStreamArn"]
    boto3.client("dynamodb").delete_table(TableName=name)  # the session's store holds the template's only


def test_the_stream_poller_delivers_a_change_as_a_dynamodb_stream_event(orders_stream):
    table, stream_arn = orders_stream
    function = Recorded(lambda event: {"batchItemFailures": []})
    poller = StreamPoller(function, stream_arn, batch_size=10, report_failures=True)
    poller.start()
    try:
        dynamodb = boto3.client("dynamodb")
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "ord_1"}, "status": {"S": "PENDING_PAYMENT"}})
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "ord_1"}},
            UpdateExpression="SET #s = :s, code = :c",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "DELIVERED"}, ":c": {"B": b"\x00secret"}},
        )
        poll(lambda: sum(len(e["Records"]) for e in function.events) == 2)
    finally:
        poller.stop()
    records = [record for event in function.events for record in event["Records"]]
    for event in function.events:
        parse(event, DynamoDBStreamModel)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    change = records[1]
    assert change["eventSource"] == "aws:dynamodb" and change["eventSourceARN"] == stream_arn
    assert change["dynamodb"]["Keys"] == {"pk": {"S": "ord_1"}}
    assert change["dynamodb"]["OldImage"]["status"] == {"S": "PENDING_PAYMENT"}
    assert change["dynamodb"]["NewImage"]["status"] == {"S": "DELIVERED"}
    assert change["dynamodb"]["NewImage"]["code"] == {"B": "AHNlY3JldA=="}  # base64, as Lambda's JSON
    json.dumps(function.events)  # JSON all through, as Lambda hands it over


def test_a_reported_failure_is_retried_from_that_record_and_filters_drop_records(orders_stream):
    table, stream_arn = orders_stream
    failed_once: list[str] = []

    def fail_the_second_record_once(event):
        second = event["Records"][1]["dynamodb"]["SequenceNumber"] if len(event["Records"]) > 1 else None
        if second and not failed_once:
            failed_once.append(second)
            return {"batchItemFailures": [{"itemIdentifier": second}]}
        return {"batchItemFailures": []}

    function = Recorded(fail_the_second_record_once)
    poller = StreamPoller(
        function,
        stream_arn,
        batch_size=10,
        report_failures=True,
        filters=('{"eventName": ["INSERT", "MODIFY"]}',),
    )
    poller.open()
    dynamodb = boto3.client("dynamodb")
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}})
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "a"}})  # REMOVE: filtered out

    assert poller.poll_once() == -1  # record b failed: retried from there
    assert poller.poll_once() == 3  # b, c, and the REMOVE that the filter dropped
    assert poller.poll_once() == 0
    keys = [[r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]] for event in function.events]
    assert keys == [["a", "b", "c"], ["b", "c"]]
    assert function.events[1]["Records"][0]["dynamodb"]["SequenceNumber"] == failed_once[0]


def test_the_runtime_serves_the_templates_websocket_api(runtime):
    """With the template's WebSocketApi: `ws_url` in local.json, and WEBSOCKET_ENDPOINT for PushFunction."""
    if not template.load().sockets:
        pytest.skip("template.yaml has no WebSocket API yet")
    assert runtime.info.ws_url.startswith("ws://127.0.0.1:")
    assert os.environ["WEBSOCKET_ENDPOINT"] == runtime.info.ws_endpoint.rstrip("/")
    assert runtime.info.ws_endpoint.endswith("/live")  # the template's stage
    with connect(runtime.info.ws_url, open_timeout=5) as socket:
        connection = poll(lambda: next(iter(runtime.sockets.open), None))
        management(runtime.info.ws_endpoint).post_to_connection(ConnectionId=connection, Data=b"hello")
        assert socket.recv(timeout=5) == "hello"


def test_an_order_change_reaches_the_socket_watching_it(runtime, shop):
    """The whole path on the runtime: watch → the callback's write → OrdersTable's stream → PushFunction →
    the management API → the socket, with the real functions."""
    if not template.load().sockets:
        pytest.skip("template.yaml has no WebSocket API yet")
    if runtime.store != "moto":
        pytest.skip("dynalite has no streams: no pushes, the page polls")
    order = shop.buy(runtime.info.demo_product_id)
    with connect(runtime.info.ws_url, open_timeout=5) as socket:
        socket.send(
            json.dumps({"action": "watch", "order_id": order["order_id"], "token": order["access_token"]})
        )
        assert json.loads(socket.recv(timeout=5))["type"] == "watching"
        assert shop.callback(shop.payment_event(order)).status_code == 200
        statuses = []
        while "DELIVERED" not in statuses:
            message = json.loads(socket.recv(timeout=10))
            assert message["type"] == "order" and "code" not in json.dumps(message).lower()
            statuses.append(message["status"])
