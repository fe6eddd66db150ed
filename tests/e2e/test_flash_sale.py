"""Flash sale and repeated callbacks, with real threads against the local runtime (issue 3):
no oversell, no code twice (I1), stock adds up (I4), each payment applied once (I5)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.adapters import orders
from tests.support import new_codes, stored_order

pytestmark = pytest.mark.e2e

BUYERS, CODES = 100, 20


def test_100_buyers_for_20_codes_each_paying_twice_concurrently(shop):
    codes = new_codes(CODES)
    product_id = shop.new_product(codes, max_per_order=1)
    start = threading.Barrier(BUYERS)

    def buyer(n: int) -> dict | int:
        start.wait()
        response = requests.post(
            f"{shop.url}/api/orders",
            timeout=60,
            json={"product_id": product_id, "quantity": 1, "email": f"b{n}@example.com"},
        )
        if response.status_code != 201:
            return response.status_code
        order = response.json()
        body = shop.payment_event(order)
        with ThreadPoolExecutor(2) as pay:  # the provider's callback arrives twice, at once
            statuses = list(pay.map(lambda _: shop.callback(body).status_code, range(2)))
        assert statuses == [200, 200]
        return order

    with ThreadPoolExecutor(BUYERS) as pool:
        outcomes = list(pool.map(buyer, range(BUYERS)))

    bought = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if not isinstance(o, dict)]
    assert len(bought) == CODES and refused == [409] * (BUYERS - CODES)
    delivered = [shop.wait_for(order, "DELIVERED", deadline=30) for order in bought]
    received = [item["code"] for order in delivered for item in order["items"]]
    assert len(received) == CODES and set(received) == set(codes)  # every code once, none twice
    for order in delivered:
        types = [e["type"] for e in order["events"]]
        assert types == ["order.created", "payment.succeeded", "order.delivered"]
    assert all(orders().history_intact(order["order_id"]) for order in bought)
    assert shop.stock(product_id) == {
        "available": 0,
        "reserved": 0,
        "sold": CODES,
        "returned": 0,
        "imported": CODES,
    }


def test_25_concurrent_copies_of_one_callback_apply_once(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    body = shop.payment_event(order)
    start = threading.Barrier(25)

    def send(_: int) -> int:
        start.wait()
        return shop.callback(body).status_code

    with ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(send, range(25)))

    assert statuses == [200] * 25
    delivered = shop.wait_for(order, "DELIVERED")
    assert [e["type"] for e in delivered["events"]] == [
        "order.created",
        "payment.succeeded",
        "order.delivered",
    ]
    assert len(delivered["items"]) == 1
    assert stored_order(order["order_id"]).payment.event_id == body["id"]
