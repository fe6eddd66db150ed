"""A purchase over HTTP exactly as API.md describes it, against the whole local runtime."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from shared.adapters import orders
from shared.orders import verify_history
from tests.support import new_codes, stored_order

pytestmark = pytest.mark.e2e


def test_a_buyer_pays_through_the_sandbox_page_and_sees_the_codes(shop):
    codes = new_codes(5)
    product_id = shop.new_product(codes, price=1999)

    product = shop.http.get(f"{shop.url}/api/products/{product_id}").json()
    assert product["price"] == {"amount": 1999, "currency": "CNY"} and product["available"] == 5

    created = shop.checkout(product_id, quantity=2)
    assert created.status_code == 201
    order = created.json()
    assert order["status"] == "PENDING_PAYMENT" and order["total"] == {"amount": 3998, "currency": "CNY"}
    assert order["payment"]["provider"] == "sandbox"

    pay_page = shop.http.get(order["payment"]["url"])
    assert pay_page.status_code == 200 and "3998" in pay_page.text
    form = dict(parse_qsl(urlsplit(order["payment"]["url"]).query))
    paid = shop.http.post(f"{shop.url}/_sandbox/pay", data=form, allow_redirects=False)
    assert paid.status_code == 303 and paid.headers["location"] == f"{shop.url}/o/{order['order_id']}"

    delivered = shop.wait_for(order, "DELIVERED")
    received = [item["code"] for item in delivered["items"]]
    assert len(received) == 2 and len(set(received)) == 2 and set(received) <= set(codes)
    assert [e["type"] for e in delivered["events"]] == [
        "order.created",
        "payment.succeeded",
        "order.delivered",
    ]
    record = stored_order(order["order_id"])
    assert verify_history(record.order_id, record.history) and orders().history_intact(record.order_id)
    assert shop.stock(product_id) == {"available": 3, "reserved": 0, "sold": 2, "returned": 0, "imported": 5}


def test_codes_are_shown_only_with_the_access_token(shop):
    product_id = shop.new_product(new_codes(1))
    order = shop.buy(product_id)
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], order["total"]["currency"])
    shop.wait_for(order, "DELIVERED")

    token = order["access_token"]
    one_char_off = token[:-1] + ("B" if token.endswith("A") else "A")
    for token in ("", "x" * 43, one_char_off):
        response = shop.order(order["order_id"], token)
        assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found"
    unknown = shop.order("ord_" + "0" * 20, order["access_token"])
    assert unknown.status_code == 404 and unknown.json() == shop.order(order["order_id"], "wrong").json()


def test_hosted_pages_are_served(shop):
    product_id = shop.new_product(new_codes(1))
    page = shop.http.get(f"{shop.url}/p/{product_id}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Test card" in page.text and 'id="buy"' in page.text
    order = shop.buy(product_id)
    order_page = shop.http.get(f"{shop.url}/o/{order['order_id']}")
    assert order_page.status_code == 200 and order["access_token"] not in order_page.text
    assert shop.http.get(f"{shop.url}/o/%3Cscript%3E").status_code == 404


def test_sold_out_is_409_and_the_page_says_so(shop):
    product_id = shop.new_product(new_codes(1))
    shop.buy(product_id)
    refused = shop.checkout(product_id)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "out_of_stock"
    assert 'id="soldout"' in shop.http.get(f"{shop.url}/p/{product_id}").text


def test_the_seeded_demo_product_is_for_sale(shop):
    demo = shop.http.get(f"{shop.url}/api/products/{shop.runtime.info.demo_product_id}").json()
    assert demo["available"] > 0 and demo["price"]["currency"] == "CNY"
