"""Crash at every write boundary, then let retries and reconciliation converge (issue 3).

Each case arms one crash point (shared/faults.py), runs a whole purchase with the retries real
clients make (the buyer retries a failed checkout, the provider retries a failed callback, SQS and
reconcile re-drive a failed delivery) plus an abandoned checkout that reconcile must expire, and
then checks: the order is DELIVERED exactly once, its codes are distinct imported codes (I1),
and stock adds up with nothing left reserved (I4)."""

from datetime import timedelta

import pytest
import requests

from functions.reconcile.run import reconcile as reconcile_run
from shared import faults
from shared.adapters import orders
from shared.orders import utcnow
from shared.settings import settings
from tests.support import new_codes, poll, stored_order

pytestmark = pytest.mark.e2e


def reconcile(after: timedelta) -> None:
    """One scheduled run, `after` from now; a crash in it is retried as the next scheduled run."""
    for _ in range(2):
        try:
            reconcile_run(settings(), utcnow() + after)
            return
        except faults.InjectedFault:
            continue


def checkout_with_retries(shop, product_id: str) -> dict:
    for _ in range(3):
        response = requests.post(
            f"{shop.url}/api/orders",
            timeout=30,
            json={"product_id": product_id, "quantity": 2, "email": "crash@example.com"},
        )
        if response.status_code == 201:
            return response.json()
        assert response.status_code == 500, response.text
    raise AssertionError("checkout never succeeded")


@pytest.mark.parametrize("point", faults.POINTS)
def test_a_crash_at_any_write_boundary_converges(shop, point):
    codes = new_codes(4)
    product_id = shop.new_product(codes)
    faults.arm(point)

    order = checkout_with_retries(shop, product_id)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")

    def delivered():
        reconcile(after=timedelta(minutes=3))  # re-drives a PAID order whose delivery failed
        body = shop.order(order["order_id"], order["access_token"]).json()
        return body if body["status"] == "DELIVERED" else None

    result = poll(delivered, deadline=30, every=0.2)
    shop.checkout(product_id)  # abandoned: never paid
    reconcile(after=timedelta(minutes=16))  # expires it, and any order a crashed checkout left behind
    reconcile(after=timedelta(minutes=16))
    reconcile(after=timedelta(minutes=30))  # burned-slot audit: a cursor snapshot older than the grace

    assert faults.armed() == set(), f"{point} was never reached"
    history = [e.type for e in stored_order(order["order_id"]).history]
    assert history.count("order.delivered") == 1 and history.count("payment.succeeded") == 1
    received = [item["code"] for item in result["items"]]
    assert len(received) == len(set(received)) == 2 and set(received) <= set(codes)
    assert orders().history_intact(order["order_id"])
    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 2, "returned": 0, "imported": 4}
