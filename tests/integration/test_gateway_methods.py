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


def test_a_repeated_query_parameter_or_header_reaches_the_function_joined_by_commas(shop):
    """As API Gateway's payload 2.0 has them: `?limit=5&limit=` is `limit=5,` (refused), not the last
    value alone (an empty one, read as absent, would let the request through locally only)."""
    listing = shop.merchant("GET", "/merchant/products?limit=5&limit=")
    assert listing.status_code == 422 and listing.json()["error"]["code"] == "invalid_limit", listing.text
    assert shop.merchant("GET", "/merchant/products?limit=5").status_code == 200

    conn = http.client.HTTPConnection("127.0.0.1", shop.runtime.gateway.port, timeout=30)
    conn.putrequest("GET", "/merchant/products")
    conn.putheader("Authorization", "Bearer mk_test_" + "x" * 32)
    conn.putheader("Authorization", f"Bearer {shop.merchant_key}")
    conn.endheaders()
    assert _answer(conn)[0] == 403  # "Bearer mk_test_…,Bearer mk_…" is no key
    conn.close()
