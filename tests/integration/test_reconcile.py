"""Reconcile re-drives PAID orders whose delivery message was lost, through the sparse `due` index."""

from datetime import timedelta

from functions.reconcile.redrive import redrive_paid
from shared.adapters import delivery_queue, orders
from shared.orders import Status, utcnow
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import new_codes


def test_a_paid_order_whose_delivery_message_was_lost_is_delivered(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)

    not_yet = redrive_paid(orders(), delivery_queue(), now=utcnow(), retry_after=timedelta(minutes=2))
    later = utcnow() + timedelta(minutes=3)
    sent = redrive_paid(orders(), delivery_queue(), now=later, retry_after=timedelta(minutes=2))

    assert not_yet == 0 and sent >= 1
    shop.wait_for(order, "DELIVERED")
    assert order["order_id"] not in orders().due(Status.PAID, before=later + timedelta(days=1))


def test_the_scheduled_handler_reports_what_it_did(runtime):
    report = runtime.functions["ReconcileFunction"].invoke({"source": "test"})
    assert set(report) == {"expired", "returned_slots", "burned_returned", "redriven"}
    assert all(isinstance(v, int) and v >= 0 for v in report.values())
