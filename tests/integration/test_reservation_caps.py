"""One buyer cannot lock the stock: unpaid orders are capped per e-mail and per client address,
exactly, even when the checkouts arrive at once; paying (or the reservation running out) frees a place."""

import threading
from datetime import timedelta

import pytest

from functions.storefront.checkout import CheckoutRequest, checkout
from shared.adapters import limits, orders, stock
from shared.adapters import shop as shop_store
from shared.errors import OutOfStock, TooMany
from shared.orders import utcnow
from shared.providers import registry
from tests.support import new_codes


def buy(product_id: str, email: str, client: str, caps=(2, 3)):
    request = CheckoutRequest(product_id=product_id, quantity=1, email=email)
    return checkout(
        request,
        shop_store(),
        stock(),
        orders(),
        limits(),
        now=utcnow(),
        reservation=timedelta(minutes=15),
        providers=registry.provider,
        public_base_url="http://127.0.0.1",
        client=client,
        caps=caps,
    )


def test_unpaid_orders_are_capped_per_email_and_paying_frees_a_place(shop):
    product_id = shop.new_product(new_codes(10))
    first = buy(product_id, "greedy@example.com", "198.51.100.1")
    buy(product_id, "Greedy@Example.com ", "198.51.100.2")  # the same address, written differently

    with pytest.raises(TooMany) as refused:
        buy(product_id, "greedy@example.com", "198.51.100.3")

    assert refused.value.code == "too_many_pending_orders" and refused.value.status == 429
    assert shop.stock(product_id)["reserved"] == 2  # the refusal reserved nothing
    assert shop.runtime.sandbox.pay(first.order.order_id, first.order.total.amount, "CNY")
    buy(product_id, "greedy@example.com", "198.51.100.3")


def test_unpaid_orders_are_capped_per_client_address(shop):
    product_id = shop.new_product(new_codes(10))
    for n in range(3):
        buy(product_id, f"buyer{n}@example.com", "203.0.113.77")
    with pytest.raises(TooMany):
        buy(product_id, "buyer9@example.com", "203.0.113.77")
    buy(product_id, "buyer9@example.com", "203.0.113.78")


def test_the_cap_holds_when_checkouts_arrive_at_once(shop):
    product_id = shop.new_product(new_codes(30), shards=8)
    start, outcomes = threading.Barrier(20), []

    def attempt(n):
        start.wait()
        try:
            buy(product_id, "burst@example.com", f"192.0.2.{n}")
            outcomes.append("ok")
        except TooMany:
            outcomes.append("capped")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["capped"] * 18 + ["ok"] * 2
    assert shop.stock(product_id)["reserved"] == 2


def test_refused_checkouts_give_their_place_back(shop):
    product_id = shop.new_product(new_codes(1))
    buy(product_id, "other@example.com", "198.51.100.50")
    for _ in range(3):  # sold out each time: a cap of 2 must not fill up with refusals
        with pytest.raises(OutOfStock):
            buy(product_id, "unlucky@example.com", "198.51.100.51")
