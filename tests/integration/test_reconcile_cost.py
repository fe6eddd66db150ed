"""Reconcile's cost follows the outstanding work, not the number of orders: a run makes the same
DynamoDB requests with 10 and with 1,000 final (delivered, expired, refunded) orders in the table."""

from datetime import timedelta

from bench.reconcile import add_final_orders
from bench.requests_counter import ThreadRequests
from functions.reconcile.run import reconcile
from shared.orders import utcnow
from shared.settings import settings
from tests.support import new_codes


def test_a_run_costs_the_same_with_10_and_1000_final_orders(shop):
    product_id = shop.new_product(new_codes(12), shards=1)
    for _ in range(10):  # ten real orders, delivered
        order = shop.buy(product_id)
        shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        shop.wait_for(order, "DELIVERED")
    counter, now = ThreadRequests("count-reconcile"), utcnow() + timedelta(days=1)

    def run() -> None:
        reconcile(settings(), now)

    for _ in range(3):  # work through whatever is outstanding until a run at `now` finds nothing new
        counter.run(run)[0]
    with_ten = counter.run(run)[0]
    add_final_orders(990, product_id, utcnow())
    with_a_thousand = counter.run(run)[0]

    assert sum(with_ten.values()) > 0
    print(
        f"\nDynamoDB requests per reconcile run: 10 final orders {dict(with_ten)}; 1,000 {dict(with_a_thousand)}"
    )
    assert with_a_thousand == with_ten
    assert "Scan" not in with_ten
