"""One buyer cannot lock the stock: unpaid orders are capped per e-mail and per client address;
paying (or expiry) frees the place."""

from datetime import timedelta

import pytest

from functions.storefront.checkout import CheckoutRequest, checkout
from shared.adapters import orders, stock
from shared.adapters import shop as shop_store
from shared.errors import TooMany
from shared.orders import utcnow
from tests.support import new_codes


def buy(product_id: str, email: str, client: str, caps=(2, 3)):
    request = CheckoutRequest(product_id=product_id, quantity=1, email=email)
    return checkout(
        request,
        shop_store(),
        stock(),
        orders(),
        now=utcnow(),
        reservation=timedelta(minutes=15),
        sandbox_pay_url="http://127.0.0.1/pay",
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
    shop.runtime.sandbox.pay(first.order.order_id, first.order.total.amount, "CNY")
    buy(product_id, "greedy@example.com", "198.51.100.3")


def test_unpaid_orders_are_capped_per_client_address(shop):
    product_id = shop.new_product(new_codes(10))
    for n in range(3):
        buy(product_id, f"buyer{n}@example.com", "203.0.113.77")
    with pytest.raises(TooMany):
        buy(product_id, "buyer9@example.com", "203.0.113.77")
    buy(product_id, "buyer9@example.com", "203.0.113.78")
