"""The storefront handler against the embedded AWS: every bad checkout is refused with its documented
error, and leaves stock and orders exactly as they were."""

import json

import pytest

from tests.support import count_items, event, new_codes


def invoke_checkout(runtime, body: str) -> tuple[int, dict]:
    response = runtime.functions["StorefrontFunction"].invoke(event("http_create_order", body=body))
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def product_id(shop):
    return shop.new_product(new_codes(3), max_per_order=2)


BAD_CHECKOUTS = {
    "malformed_json": ('{"product_id": ', 400, "malformed_json"),
    "unknown_product": ({"product_id": "prd_" + "f" * 20}, 404, "product_not_found"),
    "not_an_id": ({"product_id": "../../etc"}, 404, "product_not_found"),
    "quantity_zero": ({"quantity": 0}, 422, "validation_error"),
    "quantity_above_maximum": ({"quantity": 3}, 422, "validation_error"),
    "quantity_as_text": ({"quantity": "1"}, 422, "invalid_quantity"),
    "invalid_email": ({"email": "not-an-email"}, 422, "invalid_email"),
    "missing_email": ({"email": None}, 422, "invalid_email"),
    "unknown_field": ({"coupon": "FREE"}, 422, "invalid_coupon"),
    "unknown_provider": ({"provider": "paypal"}, 422, "invalid_provider"),
}


@pytest.mark.parametrize("case", BAD_CHECKOUTS, ids=list(BAD_CHECKOUTS))
def test_a_bad_checkout_is_refused_and_changes_nothing(runtime, shop, product_id, case):
    change, status, code = BAD_CHECKOUTS[case]
    if isinstance(change, str):
        body = change
    else:
        fields = {"product_id": product_id, "quantity": 1, "email": "buyer@example.com", **change}
        body = json.dumps({k: v for k, v in fields.items() if v is not None})
    stock_before, orders_before = shop.stock(product_id), count_items("OrdersTable")

    got_status, got = invoke_checkout(runtime, body)

    assert (got_status, got["error"]["code"]) == (status, code), got
    assert got["error"]["message"]
    assert shop.stock(product_id) == stock_before
    assert count_items("OrdersTable") == orders_before


def test_out_of_stock_is_409_and_reserves_nothing(runtime, shop):
    product_id = shop.new_product(new_codes(1))
    ok_status, _ = invoke_checkout(
        runtime, json.dumps({"product_id": product_id, "quantity": 1, "email": "a@example.com"})
    )
    orders_before = count_items("OrdersTable")

    status, body = invoke_checkout(
        runtime, json.dumps({"product_id": product_id, "quantity": 1, "email": "b@example.com"})
    )

    assert ok_status == 201 and (status, body["error"]["code"]) == (409, "out_of_stock")
    assert shop.stock(product_id)["available"] == 0 and shop.stock(product_id)["reserved"] == 1
    assert count_items("OrdersTable") == orders_before


def test_a_checkout_reserves_its_quantity(runtime, shop, product_id):
    status, body = invoke_checkout(
        runtime, json.dumps({"product_id": product_id, "quantity": 2, "email": "a@example.com"})
    )
    assert status == 201 and body["status"] == "PENDING_PAYMENT" and body["total"]["amount"] == 2 * 1999
    assert shop.stock(product_id) == {"available": 1, "reserved": 2, "sold": 0, "returned": 0, "imported": 3}


def test_a_provider_this_shop_does_not_use_is_refused_before_anything_is_reserved(shop, product_id):
    from datetime import timedelta

    from functions.storefront.checkout import CheckoutRequest, checkout
    from shared import adapters
    from shared.errors import Invalid
    from shared.orders import utcnow

    request = CheckoutRequest(product_id=product_id, quantity=1, email="a@example.com", provider="stripe")
    stock_before, orders_before = shop.stock(product_id), count_items("OrdersTable")
    stores = (adapters.products(), adapters.allocation(), adapters.orders(), adapters.limits())

    with pytest.raises(Invalid) as refused:
        checkout(request, *stores, utcnow(), timedelta(minutes=15), lambda name: None, "http://127.0.0.1")

    assert refused.value.code == "invalid_provider"
    assert shop.stock(product_id) == stock_before and count_items("OrdersTable") == orders_before


@pytest.mark.parametrize("provider", ["alipay", "wechatpay"])
def test_a_cny_only_provider_refuses_another_currency_before_anything_is_reserved(runtime, shop, provider):
    product_id = shop.new_product(new_codes(1), currency="USD")
    orders_before = count_items("OrdersTable")

    status, body = invoke_checkout(
        runtime,
        json.dumps({"product_id": product_id, "quantity": 1, "email": "a@example.com", "provider": provider}),
    )

    assert (status, body["error"]["code"]) == (422, "currency_not_supported")
    assert shop.stock(product_id)["reserved"] == 0 and count_items("OrdersTable") == orders_before


def test_a_qr_checkout_answers_its_qr_code_as_plain_svg_and_the_order_names_what_was_bought(shop):
    from xml.etree import ElementTree

    product_id = shop.new_product(new_codes(1), name="Steam 100")
    response = shop.checkout(product_id, provider="wechatpay")
    assert response.status_code == 201, response.text
    order = response.json()

    payment = order["payment"]
    assert payment["kind"] == "qr" and payment["url"].startswith("weixin://")
    svg = ElementTree.fromstring(payment["qr_svg"])
    # Only drawing: the page puts it in its DOM under a CSP that allows no inline script or style.
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert {element.tag.split("}")[1] for element in svg.iter()} == {"svg", "path"}
    assert not any("style" in element.attrib or "href" in element.attrib for element in svg.iter())
    redirect = shop.checkout(shop.new_product(new_codes(1)), provider="sandbox").json()["payment"]
    assert redirect["kind"] == "redirect" and redirect["qr_svg"] is None

    seen = shop.order(order["order_id"], order["access_token"]).json()
    assert seen["product"] == {"id": product_id, "name": "Steam 100"} and seen["provider"] == "wechatpay"
    assert (seen["quantity"], seen["total"]) == (1, {"amount": 1999, "currency": "CNY"})
