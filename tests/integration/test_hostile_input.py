"""Hostile or odd input gets a documented 4xx and changes nothing — never a 500 or a dropped connection."""

import http.client
import json
from urllib.parse import urlsplit

import pytest

from infra.local.runtime import LocalRuntime
from tests.support import count_items, new_codes

DEEP = "[" * 100_000


@pytest.mark.parametrize("path", ["/api/orders", "/merchant/products"])
def test_json_nested_too_deep_is_400(shop, path):
    response = shop.merchant("POST", path, data=DEEP, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_json")


def test_a_signed_callback_nested_too_deep_is_400(shop):
    body = DEEP[:50_000].encode()
    response = shop.callback(body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")


def test_a_json_route_reads_a_body_without_a_content_type_and_refuses_another_with_415(shop):
    product_id = shop.new_product(new_codes(1))
    body = json.dumps({"product_id": product_id, "quantity": 1, "email": "a@example.com"}).encode()
    refused = shop.http.post(
        f"{shop.url}/api/orders", data=body, headers={"Content-Type": "application/vnd.api+json"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert shop.stock(product_id)["reserved"] == 0
    bare = shop.http.post(f"{shop.url}/api/orders", data=body, headers={"Content-Type": ""})
    assert bare.status_code == 201


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", "text/plain"])
def test_a_body_that_is_not_utf8_is_400(shop, content_type):
    """JSON routes take application/json only (else 415); the stock import takes text and JSON."""
    product_id = shop.new_product([])
    json_only = (
        (400, "malformed_json") if content_type == "application/json" else (415, "unsupported_media_type")
    )
    for path, expected in (
        ("/api/orders", json_only),
        (f"/merchant/products/{product_id}/stock", (400, "malformed_json")),
    ):
        response = shop.merchant(
            "POST", path, data=b"\xff\xfe\x00code", headers={"Content-Type": content_type}
        )
        assert (response.status_code, response.json()["error"]["code"]) == expected, path


def test_an_invalid_content_length_is_400_not_a_dropped_connection(shop):
    connection = http.client.HTTPConnection(urlsplit(shop.url).netloc, timeout=10)
    connection.putrequest("POST", "/api/orders")
    connection.putheader("Content-Length", "abc")
    connection.endheaders()
    assert connection.getresponse().status == 400


def test_a_product_whose_largest_order_is_not_payable_is_refused(shop):
    product_id = shop.new_product(new_codes(3), price=600_000_000_000, max_per_order=1)
    assert shop.stock(product_id)["available"] == 3
    orders_before = count_items("OrdersTable")
    # max_per_order=1 keeps the product valid; a second unit would exceed the cap
    refused = shop.merchant(
        "POST",
        "/merchant/products",
        json={"name": "x", "price": {"amount": 600_000_000_000, "currency": "CNY"}, "max_per_order": 2},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_error")
    assert "max_per_order" in refused.json()["error"]["message"]
    assert count_items("OrdersTable") == orders_before


def test_the_sandbox_never_redirects_off_the_shop_or_injects_headers(shop):
    order = shop.buy(shop.new_product(new_codes(2)))
    form = {"order_id": order["order_id"], "amount": str(order["total"]["amount"]), "currency": "CNY"}
    for return_url in (
        f"{shop.url}/%0d%0aSet-Cookie:%20pwned=1",
        f"{shop.url}/\r\nSet-Cookie: pwned=1",
        "https://evil.example/o/x",
        f"{shop.url}.evil.example/o/x",
    ):
        response = shop.http.post(
            f"{shop.url}/_sandbox/pay", data={**form, "return_url": return_url}, allow_redirects=False
        )
        assert response.status_code in (200, 303) and "set-cookie" not in response.headers
        if response.status_code == 303:
            assert response.headers["location"] == return_url and "\n" not in return_url


def test_a_merchant_key_without_the_prefix_is_refused_clearly():
    with pytest.raises(ValueError, match="mk_test_"):
        LocalRuntime(merchant_key="my-own-demo-key-123")
