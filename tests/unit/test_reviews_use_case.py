"""Reviews with in-memory fakes: the merchant's approve and reject (functions/merchant/reviews.py),
each safe to send again and never undoing the other; and reconcile's deadline step
(functions/reconcile/reviews.py), which applies the product's policy to risk reviews only, once."""

from datetime import timedelta

import pytest

from functions.merchant.reviews import approve, list_reviews, reject
from functions.reconcile.reviews import HELD_LOOKED_AT_AGAIN, expire_reviews
from shared.errors import NotFound, StateConflict
from shared.orders import Order, Status
from shared.products import Product
from shared.reviews import decided, is_risk_review, review_due_in
from tests.fakes import MERCHANT_ID, REDRIVE_AFTER, FakePorts, stored

DECISION = {"risk": {"action": "review", "decided_by": "first-order-large"}}


def risk_review(fakes: FakePorts, product: Product | None = None) -> Order:
    """A paid order the risk engine sent to review, due at its product's deadline."""
    product = product or fakes.add_product()
    paid = fakes.add_order(product, Status.PAID)
    return fakes.orders.transition(
        paid, "risk.review", fakes.clock(), DECISION, due_in=review_due_in(product)
    )


def test_the_deadline_defaults_to_a_day_and_a_risk_review_is_told_from_a_held_order(fakes):
    order = risk_review(fakes)
    held = fakes.add_order(fakes.add_product(), Status.IN_REVIEW)  # review.held
    assert review_due_in(None) == timedelta(hours=24)
    assert fakes.orders.due_entry(order.order_id) == (Status.IN_REVIEW, fakes.clock() + timedelta(hours=24))
    assert is_risk_review(order) and not is_risk_review(held)


def test_approve_releases_the_order_to_delivery_and_again_answers_the_same(fakes):
    order = risk_review(fakes)
    approved = approve(MERCHANT_ID, order.order_id, fakes, fakes.clock(), REDRIVE_AFTER)
    assert approved.status == Status.PAID and fakes.delivery.sent == [order.order_id]
    assert stored(fakes, order).history[-1].data == {"by": "merchant"}
    assert fakes.orders.due_entry(order.order_id) == (Status.PAID, fakes.clock() + REDRIVE_AFTER)

    again = approve(MERCHANT_ID, order.order_id, fakes, fakes.clock(), REDRIVE_AFTER)
    assert again.status == Status.PAID and decided(again, "merchant") == "approved"
    assert [e.type for e in stored(fakes, order).history].count("review.released") == 1
    with pytest.raises(StateConflict) as refused:
        reject(MERCHANT_ID, order.order_id, "", fakes, fakes.clock())
    assert refused.value.code == "not_in_review"


def test_reject_refunds_gives_the_stock_back_and_again_refunds_nothing_more(fakes):
    product = fakes.add_product(codes=1)
    order = risk_review(fakes, product)
    rejected = reject(MERCHANT_ID, order.order_id, "stolen card", fakes, fakes.clock())
    assert rejected.status in (Status.REFUNDING, Status.REFUNDED)
    assert len(fakes.sandbox.refunds_sent) == 1
    assert fakes.allocation.available(product.product_id, product.shards) == 1
    again = reject(MERCHANT_ID, order.order_id, "stolen card", fakes, fakes.clock())
    assert again.status == stored(fakes, order).status and len(fakes.sandbox.refunds_sent) == 1
    with pytest.raises(StateConflict):
        approve(MERCHANT_ID, order.order_id, fakes, fakes.clock(), REDRIVE_AFTER)


def test_another_merchants_order_is_not_found_and_an_order_not_in_review_conflicts(fakes):
    order = risk_review(fakes)
    for decide in (
        lambda m, o: approve(m, o, fakes, fakes.clock(), REDRIVE_AFTER),
        lambda m, o: reject(m, o, "", fakes, fakes.clock()),
    ):
        with pytest.raises(NotFound):
            decide("mer_" + "f" * 20, order.order_id)
        with pytest.raises(NotFound):
            decide(MERCHANT_ID, "not-an-id")
        delivered = fakes.add_order(fakes.add_product(), Status.DELIVERED)
        with pytest.raises(StateConflict):
            decide(MERCHANT_ID, delivered.order_id)
    assert stored(fakes, order).status == Status.IN_REVIEW


def test_the_queue_lists_only_the_merchants_orders_still_in_review_longest_waiting_first(fakes):
    first = risk_review(fakes)
    fakes.clock.advance(timedelta(minutes=1))
    held = fakes.add_order(fakes.add_product(), Status.IN_REVIEW)
    fakes.clock.advance(timedelta(minutes=1))
    gone = risk_review(fakes)
    approve(MERCHANT_ID, gone.order_id, fakes, fakes.clock(), REDRIVE_AFTER)
    listed = list_reviews(MERCHANT_ID, fakes.orders)
    assert [r.order.order_id for r in listed] == [first.order_id, held.order_id]
    assert listed[0].due_at == first.history[-1].at + timedelta(hours=24) and listed[1].due_at is None
    assert list_reviews("mer_" + "f" * 20, fakes.orders) == []


# ---------- past the deadline ----------


@pytest.mark.parametrize(("policy", "ends"), [("refund", Status.REFUNDING), ("deliver", Status.PAID)])
def test_past_its_deadline_a_risk_review_follows_its_products_policy(fakes, policy, ends):
    product = fakes.add_product(codes=1, review_deadline_minutes=30, when_review_expires=policy)
    order = risk_review(fakes, product)

    assert expire_reviews(fakes, fakes.clock() + timedelta(minutes=29), REDRIVE_AFTER) == []
    assert expire_reviews(fakes, fakes.clock() + timedelta(minutes=30), REDRIVE_AFTER) == [order.order_id]

    after = stored(fakes, order)
    assert after.status == ends and after.history[-1].data["by"] == "deadline"
    if policy == "deliver":
        assert fakes.delivery.sent == [order.order_id]
    else:
        assert fakes.allocation.available(product.product_id, product.shards) == 1
        assert fakes.orders.due_entry(order.order_id) is not None  # the refund step sends it
    assert expire_reviews(fakes, fakes.clock() + timedelta(minutes=31), REDRIVE_AFTER) == []


def test_a_held_order_is_left_to_its_merchant_and_looked_at_again_a_day_later(fakes):
    held = fakes.add_order(fakes.add_product(), Status.IN_REVIEW)
    later = fakes.clock() + timedelta(days=3)

    assert expire_reviews(fakes, later, REDRIVE_AFTER) == []

    assert stored(fakes, held).history == held.history
    assert fakes.orders.due_entry(held.order_id) == (Status.IN_REVIEW, later + HELD_LOOKED_AT_AGAIN)


def test_a_review_its_merchant_decided_after_the_run_read_it_is_left_alone(fakes, monkeypatch):
    """The index and the read both stale (the merchant approved in between): the conditional write is
    refused, and the run decides nothing."""
    order = risk_review(fakes)
    later = fakes.clock() + timedelta(days=2)
    listed, stale = fakes.orders.outstanding(Status.IN_REVIEW, before=later), stored(fakes, order)
    approve(MERCHANT_ID, order.order_id, fakes, fakes.clock(), REDRIVE_AFTER)
    monkeypatch.setattr(fakes.orders, "outstanding", lambda *args, **kwargs: listed)
    monkeypatch.setattr(fakes.orders, "get", lambda order_id: stale)

    assert expire_reviews(fakes, later, REDRIVE_AFTER) == []

    monkeypatch.undo()
    after = stored(fakes, order)
    assert after.status == Status.PAID and decided(after, "merchant") == "approved"
    assert [e.type for e in after.history].count("refund.requested") == 0
