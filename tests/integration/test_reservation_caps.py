"""One buyer cannot lock the stock: unpaid orders are capped per e-mail and per client address,
exactly, even when the checkouts arrive at once; paying (or the reservation running out) frees a place."""

import threading
from datetime import timedelta

import pytest

from functions.storefront.checkout import CheckoutRequest, checkout
from shared.adapters import allocation, limits, orders
from shared.adapters import products as product_store
from shared.errors import OutOfStock, TooMany
from shared.orders import utcnow
from shared.providers import registry
from tests.support import new_codes


def buy(product_id: str, email: str, client: str, caps=(2, 3), quantity: int = 1, unpaid_units: int = 0):
    """A checkout in process, as the storefront makes it for a buyer at `client`."""
    request = CheckoutRequest(product_id=product_id, quantity=quantity, email=email)
    return checkout(
        request,
        product_store(),
        allocation(),
        orders(),
        limits(),
        now=utcnow(),
        reservation=timedelta(minutes=15),
        providers=registry.provider,
        public_base_url="http://127.0.0.1",
        client=client,
        caps=caps,
        unpaid_units=unpaid_units,
    )


def test_unpaid_orders_are_capped_per_email_and_paying_frees_a_place(shop):
    product_id = shop.new_product(new_codes(10))
    first = buy(product_id, "greedy@example.com", "198.51.100.1")
    buy(product_id, "Greedy@Example.com ", "198.51.100.1")  # the same address, written differently

    with pytest.raises(TooMany) as refused:
        buy(product_id, "greedy@example.com", "198.51.100.1")

    assert refused.value.code == "too_many_pending_orders" and refused.value.status == 429
    assert shop.stock(product_id)["reserved"] == 2  # the refusal reserved nothing
    assert shop.runtime.sandbox.pay(first.order.order_id, first.order.total.amount, "CNY")
    buy(product_id, "greedy@example.com", "198.51.100.1")


def test_unpaid_orders_in_an_email_from_another_client_do_not_lock_its_owner_out(shop):
    product_id = shop.new_product(new_codes(10))
    for n in range(2):  # somebody fills the e-mail's cap of 2 from their own addresses
        buy(product_id, "victim@example.com", f"198.51.100.{20 + n}")
        buy(product_id, "victim@example.com", f"198.51.100.{20 + n}")

    buy(product_id, "victim@example.com", "198.51.100.30")  # the owner, from theirs


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
            buy(product_id, f"burst{n}@example.com", "192.0.2.1")
            outcomes.append("ok")
        except TooMany:
            outcomes.append("capped")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["capped"] * 17 + ["ok"] * 3  # one client, capped at 3
    assert shop.stock(product_id)["reserved"] == 3


def test_refused_checkouts_give_their_place_back(shop):
    product_id = shop.new_product(new_codes(1))
    buy(product_id, "other@example.com", "198.51.100.50")
    for _ in range(3):  # sold out each time: a cap of 2 must not fill up with refusals
        with pytest.raises(OutOfStock):
            buy(product_id, "unlucky@example.com", "198.51.100.51")
