"""The local gateway answers a request no route takes as API Gateway's HTTP API does, whatever its
method: 404 with its JSON `{"message":"Not Found"}`, never http.server's 501 HTML page."""

import http.client
import json

import pytest

NOT_FOUND = {"message": "Not Found"}


@pytest.fixture
def connection(runtime):
    conn = http.client.HTTPConnection("127.0.0.1", runtime.gateway.port, timeout=30)
    yield conn
    conn.close()


def _answer(conn: http.client.HTTPConnection) -> tuple[int, str, bytes]:
    response = conn.getresponse()
    return response.status, response.getheader("content-type", ""), response.read()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW", "DELETE", "PUT"])
@pytest.mark.parametrize("path", ["/api/orders", "/merchant/products", "/no/such/path"])
def test_a_method_no_route_has_is_api_gateways_json_404(connection, method, path):
    connection.request(method, path)
    status, content_type, body = _answer(connection)
    assert (status, content_type, json.loads(body)) == (404, "application/json", NOT_FOUND)


def test_the_connection_serves_the_next_request_after_an_unknown_method_with_a_body(connection):
    connection.request(
        "TRACE", "/api/orders", body=b'{"items": []}', headers={"Content-Type": "application/json"}
    )
    assert _answer(connection)[0] == 404
    connection.request("GET", "/openapi.json")
    status, content_type, body = _answer(connection)
    assert status == 200 and content_type.startswith("application/json")
    assert "paths" in json.loads(body)
