"""template.yaml declares the order page's push (docs/push.md): a WebSocket API whose four routes are
the socket function, a connections table with TTL, the orders table's stream feeding the push function
with bounded retries and partial batch failures, and management-API rights scoped to that API."""

import json
from typing import Any

import pytest

from infra.local.template import translate

ROUTES = {"$connect", "$disconnect", "watch", "$default"}


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def of_type(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r.get("Properties", {}) for k, r in cfn["Resources"].items() if r["Type"] == kind}


def test_the_websocket_api_routes_every_key_to_the_socket_function_with_no_route_response(cfn):
    (api,) = [
        k for k, p in of_type(cfn, "AWS::ApiGatewayV2::Api").items() if p.get("ProtocolType") == "WEBSOCKET"
    ]
    props = cfn["Resources"][api]["Properties"]
    assert props["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        p["RouteKey"]: p
        for p in of_type(cfn, "AWS::ApiGatewayV2::Route").values()
        if p["ApiId"] == {"Ref": api}
    }
    assert set(routes) == ROUTES
    integrations = of_type(cfn, "AWS::ApiGatewayV2::Integration")
    for key, route in routes.items():
        integration = integrations[route["Target"]["Fn::Sub"].split("${")[1].rstrip("}")]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert "${SocketFunction.Arn}" in integration["IntegrationUri"]["Fn::Sub"], key
        assert "RouteResponseSelectionExpression" not in route  # answers go through PostToConnection
    assert not of_type(cfn, "AWS::ApiGatewayV2::RouteResponse")
    (stage,) = [p for p in of_type(cfn, "AWS::ApiGatewayV2::Stage").values() if p["ApiId"] == {"Ref": api}]
    assert stage["StageName"] == "live"
    permissions = of_type(cfn, "AWS::Lambda::Permission").values()
    assert any(
        p["FunctionName"] == {"Ref": "SocketFunction"}
        and "${WebSocketApi}/live/" in p["SourceArn"]["Fn::Sub"]
        for p in permissions
    )
    assert "WebSocketUrl" in cfn["Outputs"]


def test_connections_expire_and_the_orders_table_streams_both_images(cfn):
    tables = of_type(cfn, "AWS::DynamoDB::Table")
    assert tables["ConnectionsTable"]["TimeToLiveSpecification"] == {
        "AttributeName": "expires",
        "Enabled": True,
    }
    assert tables["OrdersTable"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_push_function_reads_the_stream_from_now_with_partial_failures_and_bounded_retries(cfn):
    (mapping,) = [
        p
        for p in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if p["FunctionName"] == {"Ref": "PushFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 5 and mapping["MaximumRecordAgeInSeconds"] <= 300
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [{"eventName": ["MODIFY"]}]


def statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = cfn["Resources"][role]["Properties"].get("Policies", [])
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize(
    ("function", "verbs"), [("SocketFunction", {"POST", "DELETE", "GET"}), ("PushFunction", {"POST"})]
)
def test_management_api_rights_are_this_apis_connections_only(cfn, function, verbs):
    granted = [s for s in statements(cfn, function) if "execute-api:ManageConnections" in s["Action"]]
    resources = [
        r for s in granted for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    assert {r["Fn::Sub"].split("/live/")[1].split("/")[0] for r in resources} == verbs
    assert all(
        "${WebSocketApi}/live/" in r["Fn::Sub"] and r["Fn::Sub"].endswith("/@connections/*")
        for r in resources
    )
    variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert {"WEBSOCKET_ENDPOINT", "CONNECTIONS_TABLE"} <= set(variables)
    for statement in statements(cfn, function):  # no table but its own two, and no wildcard action
        assert all(not a.endswith("*") for a in statement["Action"])
