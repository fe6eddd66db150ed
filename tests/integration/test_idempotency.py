"""Checkout with an Idempotency-Key: a retry, even a concurrent one, returns the same order and
reserves stock once; the same key with a different request is refused."""

import secrets
import threading

import requests

from tests.support import count_items, new_codes


def checkout(shop, product_id: str, key: str, quantity: int = 1) -> requests.Response:
    return requests.post(
        f"{shop.url}/api/orders",
        timeout=30,
        headers={"Idempotency-Key": key},
        json={"product_id": product_id, "quantity": quantity, "email": "idem@example.com"},
    )


def test_a_retry_returns_the_same_order_and_reserves_once(shop):
    product_id = shop.new_product(new_codes(3))
    key = secrets.token_hex(16)

    first, again = checkout(shop, product_id, key), checkout(shop, product_id, key)

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert shop.order(first.json()["order_id"], again.json()["access_token"]).status_code == 200
    assert shop.stock(product_id)["reserved"] == 1


def test_concurrent_retries_create_one_order(shop):
    product_id = shop.new_product(new_codes(25), shards=8)
    key, results = secrets.token_hex(16), []
    start = threading.Barrier(10)

    def send():
        start.wait()
        results.append(checkout(shop, product_id, key, quantity=2))

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {r.status_code for r in results} == {201}
    assert len({r.json()["order_id"] for r in results}) == 1
    levels = shop.stock(product_id)
    assert (levels["reserved"], levels["available"]) == (2, 23)  # the losers' slots went back


def test_the_same_key_with_another_request_is_refused_and_changes_nothing(shop):
    product_id = shop.new_product(new_codes(3))
    key = secrets.token_hex(16)
    assert checkout(shop, product_id, key).status_code == 201
    orders_before, stock_before = count_items("OrdersTable"), shop.stock(product_id)

    refused = checkout(shop, product_id, key, quantity=2)

    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert count_items("OrdersTable") == orders_before and shop.stock(product_id) == stock_before


def test_an_overlong_key_is_422(shop):
    product_id = shop.new_product(new_codes(1))
    refused = checkout(shop, product_id, "k" * 256)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_idempotency_key")
    assert shop.stock(product_id)["reserved"] == 0
