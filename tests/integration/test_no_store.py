"""No browser or proxy keeps an answer that carries a code, a token or a secret (`Cache-Control:
no-store` on every JSON answer of the API, errors too), and the hosted pages ask for HTTPS only
from then on (HSTS)."""

import pytest

from shared.adapters import merchants as merchant_store
from tests.integration.test_buyer_mail import lookup
from tests.support import new_codes

HSTS = "max-age=63072000; includeSubDomains"


@pytest.fixture(scope="module")
def merchant(shop):
    """A merchant of its own: its webhook (set below) sends nothing to any other test."""
    _, key = merchant_store().create_merchant("No-store merchant")
    product_id = shop.new_product(new_codes(3), key=key)
    return {"key": key, "product_id": product_id}


def test_the_buyer_answers_with_a_token_or_codes_are_not_stored(shop, merchant):
    created = shop.checkout(merchant["product_id"])
    order = created.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")

    delivered = shop.order(order["order_id"], order["access_token"])

    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    assert delivered.json()["items"] and delivered.headers["Cache-Control"] == "no-store"
    assert lookup(shop, "no-store@example.com").headers["Cache-Control"] == "no-store"
    product = shop.http.get(f"{shop.url}/api/products/{merchant['product_id']}", timeout=10)
    assert product.headers["Cache-Control"] == "no-store"


def test_error_answers_are_not_stored(shop, merchant):
    wrong_token = shop.order("ord_" + "0" * 20, "not-the-token")
    out_of_stock = shop.checkout(merchant["product_id"], quantity=5)
    malformed = shop.http.post(f"{shop.url}/api/orders", data=b"{", timeout=10)

    for answer in (wrong_token, out_of_stock, malformed):
        assert answer.status_code >= 400 and answer.headers["Cache-Control"] == "no-store", answer.text


def test_merchant_answers_with_secrets_or_codes_are_not_stored(shop, merchant):
    key, product_id = merchant["key"], merchant["product_id"]
    webhook = shop.merchant(
        "PUT", "/merchant/webhook", key=key, json={"url": "http://127.0.0.1:9/hooks/no-store"}
    )
    exported = shop.merchant("GET", f"/merchant/products/{product_id}/stock/export", key=key)
    listed = shop.merchant("GET", "/merchant/products", key=key)
    orders = shop.merchant("GET", "/merchant/orders", key=key)

    assert webhook.status_code == 200 and webhook.json()["secret"]
    for answer in (webhook, exported, listed, orders):
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store", answer.text
    assert shop.merchant("DELETE", "/merchant/webhook", key=key).status_code == 204


def test_the_hosted_pages_are_https_only_and_not_stored(shop, merchant):
    order = shop.buy(merchant["product_id"])
    pages = [
        f"/p/{merchant['product_id']}",
        f"/o/{order['order_id']}",
        f"/p/{merchant['product_id']}?lang=en",
    ]

    for path in pages:
        page = shop.http.get(f"{shop.url}{path}", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Strict-Transport-Security"] == HSTS
        assert page.headers["Cache-Control"] == "no-store"
