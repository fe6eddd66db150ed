"""A crash at every write boundary off the happy path (shared/faults.py EDGE_POINTS), each in the
scenario that reaches it, then retries and reconciliation converge: every order ends DELIVERED or
REFUNDED with its money and codes where they belong, no code twice (I1), and the stock audit (I4,
against the slots actually there) finds nothing. Each case proves its crash point was reached."""

import contextlib
from collections.abc import Callable
from datetime import timedelta

import pytest

from functions.reconcile.audit import audit_stock
from functions.reconcile.run import reconcile as reconcile_run
from shared import faults
from shared.adapters import orders, stock_upkeep
from shared.adapters import products as product_store
from shared.orders import utcnow
from shared.settings import settings
from tests.integration.test_reconcile import lose_every_redrive
from tests.integration.test_refunds import paid_not_delivered, refund
from tests.support import expire_all, new_codes, poll, stored_order

pytestmark = pytest.mark.e2e
GRACE = timedelta(minutes=6)


def reconcile(after: timedelta) -> dict:
    """One scheduled run `after` from now; a crash in it is retried as the next run would."""
    for _ in range(3):
        with contextlib.suppress(faults.InjectedFault):
            return reconcile_run(settings(), utcnow() + after)
    raise AssertionError("reconcile kept crashing")


def settle(after: timedelta) -> None:
    """Runs far enough apart for snapshots to age past the grace period and burned slots to return."""
    for n in range(3):
        reconcile(after + n * GRACE)


def clean(shop, product_id: str, after: timedelta) -> None:
    assert audit_stock(product_store(), stock_upkeep(), orders(), [product_id], utcnow() + after) == {}


def multi_shard_claim(shop):
    """An order of 2 when no shard holds 2: a piece from each shard, then the crash."""
    product_id = shop.new_product(new_codes(2), shards=2, max_per_order=2)
    assert shop.checkout(product_id, 2).status_code == 500  # died between its two pieces
    assert shop.checkout(product_id, 2).status_code == 409  # its piece is burned until reconcile returns it
    settle(timedelta(minutes=1))
    order = shop.buy(product_id, quantity=2)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    assert len(set(i["code"] for i in shop.wait_for(order, "DELIVERED")["items"])) == 2
    return product_id, {"available": 0, "reserved": 0, "sold": 2, "returned": 0, "imported": 2}


def giving_back(shop):
    """A reusable code: the order of 2 takes the fresh copy, refuses the pooled copy of the same code,
    and dies while giving the fresh piece back."""
    product_id = shop.new_product(new_codes(1), shards=1, max_per_order=2, sales_per_code=2)
    shop.buy(product_id)
    expire_all()  # copy 0 to the pool
    assert shop.checkout(product_id, 2).status_code == 500
    settle(timedelta(minutes=20))  # the fresh copy it held comes back
    for _ in range(2):
        order = shop.buy(product_id)
        assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        shop.wait_for(order, "DELIVERED")
    return product_id, {"available": 0, "reserved": 0, "sold": 2, "returned": 0, "imported": 2}


def late_payment(shop):
    """Paid after its reservation expired: re-reserved from other stock, across a crash."""
    product_id = shop.new_product(new_codes(3), shards=1)
    order = shop.buy(product_id)
    expire_all()
    payment = shop.payment_event(order)
    assert shop.callback(payment).status_code == 500
    assert shop.callback(payment).json()["outcome"] == "applied"  # the provider's retry
    shop.wait_for(order, "DELIVERED")
    settle(timedelta(minutes=20))
    return product_id, {"available": 2, "reserved": 0, "sold": 1, "returned": 0, "imported": 3}


def redrive(shop):
    """A paid order whose delivery message was lost: re-driven, or given up and refunded."""
    product_id = shop.new_product(new_codes(2), shards=1)
    order = shop.buy(product_id)
    paid_not_delivered(shop, order)
    if faults.armed() == {"redrive:after-claimed"}:
        reconcile(timedelta(minutes=3))  # claims the re-drive, dies before sending it

        def delivered():
            reconcile(timedelta(minutes=30))  # past the pause: sent again
            return stored_order(order["order_id"]).status == "DELIVERED"

        poll(delivered, deadline=30, every=0.2)
        settle(timedelta(hours=1))
        return product_id, {"available": 1, "reserved": 0, "sold": 1, "returned": 0, "imported": 2}
    last_day = lose_every_redrive(utcnow())  # every re-drive lost: given up, then refunded
    settle(timedelta(days=last_day + 2))
    assert stored_order(order["order_id"]).status == "REFUNDED"
    return product_id, {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}


def merchant_refund(shop):
    """The merchant refunds a paid, undelivered order; its answer is lost to a crash, it asks again."""
    product_id = shop.new_product(new_codes(2), shards=1)
    order = shop.buy(product_id)
    paid_not_delivered(shop, order)
    assert refund(shop, order["order_id"], json={"reason": "customer asked"}).status_code == 500
    again = refund(shop, order["order_id"], json={"reason": "customer asked"})
    assert again.status_code in (200, 202), again.text
    settle(timedelta(minutes=5))
    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert shop.runtime.sandbox.refunds_for(stored_order(order["order_id"]).payment.payment_id)
    return product_id, {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}


SCENARIOS: dict[str, Callable] = {
    "claim:between-pieces": multi_shard_claim,
    "claim:giving-back": giving_back,
    "webhook:late-after-release": late_payment,
    "webhook:late-after-claim": late_payment,
    "redrive:after-claimed": redrive,
    "redrive:between-refunding-and-release": redrive,
    "refund:between-refunding-and-release": merchant_refund,
    "refund:after-confirmed": merchant_refund,
}


def test_every_edge_point_has_a_scenario():
    assert set(SCENARIOS) == set(faults.EDGE_POINTS)


@pytest.mark.parametrize("point", faults.EDGE_POINTS)
def test_a_crash_off_the_happy_path_converges(shop, point):
    faults.arm(point)
    product_id, levels = SCENARIOS[point](shop)
    assert faults.armed() == set(), f"{point} was never reached"
    assert shop.stock(product_id) == levels
    clean(shop, product_id, timedelta(days=30))
