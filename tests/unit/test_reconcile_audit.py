"""Reconcile's report, with in-memory fakes (functions/reconcile/audit.py): open orders by state and
age (the stuck-orders alarm's numbers), and the stock audit (I4), which finds stock that does not add
up against the slots there and the orders they name, and reports it by product."""

import logging
from datetime import timedelta

import pytest

from functions.reconcile.audit import STUCK_AFTER_SECONDS, audit_stock, orders_by_age
from functions.reconcile.burned import return_burned_slots
from shared.orders import Status
from shared.products import Product
from tests.fakes import RESERVATION, FakePorts, stored

GRACE = timedelta(minutes=5)  # a claim younger than this may still be writing its order
OPEN = ["PENDING_PAYMENT", "PAID", "IN_REVIEW", "EXPIRED", "REFUNDING"]


def audit(fakes: FakePorts) -> dict[str, list[str]]:
    """The audit as a run calls it: for the products whose stock moved since it was last settled."""
    due = sorted(fakes.upkeep.shards_due())
    return audit_stock(fakes.products, fakes.upkeep, fakes.orders, due, fakes.clock())


def settle(fakes: FakePorts) -> None:
    """The burned-slot step, which runs after the audit in every run."""
    return_burned_slots(fakes.orders, fakes.upkeep, fakes.clock())


def dead_checkout(fakes: FakePorts, product: Product) -> str:
    order_id = fakes.new_id("ord")
    with fakes.quietly():
        fakes.allocation.claim(product.product_id, product.shards, 1, order_id)
    return order_id


# ---------- orders by age ----------


def test_each_open_state_is_counted_with_its_oldest_and_its_ages(fakes):
    product = fakes.add_product(codes=10)
    pending = fakes.add_order(product)
    fakes.add_order(product, Status.PAID)
    fakes.add_order(product, Status.IN_REVIEW)
    fakes.add_order(product, Status.DELIVERED)
    fakes.add_order(product, Status.EXPIRED)  # its stock back: nothing outstanding
    fakes.clock.advance(minutes=4)
    fakes.add_order(product, Status.PAID)
    fakes.add_order(product, Status.REFUNDING)
    fakes.clock.advance(minutes=2)

    report = orders_by_age(fakes.orders, fakes.clock())

    assert list(report) == OPEN
    assert report["PAID"] == {
        "count": 2,
        "oldest_seconds": 360,
        "by_age": {"5m_15m": 1, "1m_5m": 1},
        "stuck": 1,
    }
    assert report["PENDING_PAYMENT"] == {"count": 1, "oldest_seconds": 360, "by_age": {"5m_15m": 1}}
    assert report["IN_REVIEW"]["count"] == 1 and report["REFUNDING"]["count"] == 1
    assert report["EXPIRED"] == {"count": 0, "oldest_seconds": 0, "by_age": {}}
    assert stored(fakes, pending).status == Status.PENDING_PAYMENT  # only read


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0, "under_1m"),
        (59, "under_1m"),
        (60, "1m_5m"),
        (299, "1m_5m"),
        (300, "5m_15m"),
        (899, "5m_15m"),
        (900, "15m_1h"),
        (3599, "15m_1h"),
        (3600, "1h_1d"),
        (86399, "1h_1d"),
        (86400, "over_1d"),
    ],
)
def test_a_paid_order_is_counted_by_its_age_and_stuck_after_five_minutes(fakes, seconds, bucket):
    fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(seconds=seconds)

    paid = orders_by_age(fakes.orders, fakes.clock())["PAID"]

    assert paid["by_age"] == {bucket: 1} and paid["oldest_seconds"] == seconds
    assert paid["stuck"] == (1 if seconds >= STUCK_AFTER_SECONDS else 0)


def test_an_entry_without_its_state_time_is_aged_from_its_deadline_never_below_zero(fakes):
    # Items written before `status_at` existed have only their deadline.
    paid = fakes.add_order(fakes.add_product(codes=3), Status.PAID)
    for name, due in (("ord_overdue", fakes.clock()), ("ord_upcoming", fakes.clock() + timedelta(hours=1))):
        fakes.orders.put(paid.model_copy(update={"order_id": name}), due=(Status.PAID, due))
    fakes.clock.advance(minutes=3)

    report = orders_by_age(fakes.orders, fakes.clock())["PAID"]

    assert report["count"] == 3 and report["oldest_seconds"] == 180
    assert report["by_age"] == {"1m_5m": 2, "under_1m": 1}


# ---------- the stock audit (I4) ----------


def test_a_shop_where_everything_adds_up_reports_nothing_as_it_moves(fakes):
    product = fakes.add_product(codes=10, shards=2)
    for status in Status:
        if status != Status.REPLACED:
            fakes.add_order(product, status)
    fakes.add_order(product, quantity=3)

    for _ in range(4):
        assert audit(fakes) == {}
        settle(fakes)
        fakes.clock.advance(RESERVATION)


def test_a_slot_held_by_an_order_that_was_never_written_is_reported_once_past_its_grace(fakes):
    product = fakes.add_product(codes=3)
    dead = dead_checkout(fakes, product)  # the burned-slot step would return it; here it did not run

    fakes.clock.advance(2 * GRACE - timedelta(seconds=1))
    assert audit(fakes) == {}
    fakes.clock.advance(seconds=1)
    assert audit(fakes) == {
        product.product_id: [f"shard 0 slot 0: held by {dead}, which does not exist (lost)"]
    }


def test_a_slot_two_orders_stand_on_is_reported(fakes):
    product = fakes.add_product(codes=3)
    holder, other = fakes.add_order(product), fakes.add_order(product)
    fakes.orders.put(stored(fakes, other).model_copy(update={"slots": holder.slots}))

    found = audit(fakes)[product.product_id]

    assert f"shard 0 slot 0: held by {holder.order_id} and listed by {other.order_id} as well" in found


def test_a_problem_is_reported_every_run_until_it_is_mended(fakes):
    # The alarm needs two runs in a row: a problem that stays must not drop out of the audit.
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.DELIVERED)
    fakes.orders.put(stored(fakes, order).model_copy(update={"slots": []}))
    problem = f"shard 0 slot 0: bound to {order.order_id}, which does not list it"

    for _ in range(3):
        assert audit(fakes) == {product.product_id: [problem]}
        settle(fakes)
        fakes.clock.advance(GRACE)

    fakes.orders.put(order)
    assert audit(fakes) == {}


def test_a_slot_taken_above_the_shards_cursor_is_reported(fakes):
    product = fakes.add_product(codes=3)
    fakes.add_order(product)
    fakes.allocation.slots[(product.product_id, 0, 2)].holder = "ord_drift"  # the counter drifted

    assert audit(fakes) == {product.product_id: ["shard 0 slot 2: taken (ord_drift) but above the cursor 1"]}


def test_stock_without_a_product_is_reported(fakes):
    fakes.allocation.add_codes("prd_orphan", ["CODE-1"], fakes.ciphers("mer_nobody"))

    assert audit(fakes) == {"prd_orphan": ["stock without a product"]}


def test_an_abandoned_hold_on_a_pooled_slot_is_reported_with_its_product(fakes):
    product = fakes.add_product(codes=1)
    fakes.add_order(product, Status.EXPIRED)
    dead = dead_checkout(fakes, product)  # from the pool
    fakes.clock.advance(2 * GRACE)

    found = audit(fakes)[product.product_id]

    assert f"shard 0 slot 0: pooled slot held by {dead}, which does not hold it" in found


def test_only_products_whose_stock_moved_are_audited(fakes):
    quiet, busy = fakes.add_product(codes=3), fakes.add_product(codes=3)
    audit(fakes)
    settle(fakes)
    fakes.clock.advance(GRACE)
    audit(fakes)
    settle(fakes)
    assert fakes.upkeep.shards_due() == {}
    fakes.upkeep.calls.clear()

    fakes.add_order(busy)
    audit(fakes)

    assert [call.args[0] for call in fakes.upkeep.called("audit")] == [busy.product_id]
    assert quiet.product_id not in fakes.upkeep.shards_due()


def test_a_problem_is_logged_as_an_error_with_its_product(fakes, caplog):
    product = fakes.add_product(codes=3)
    fakes.add_order(product)
    fakes.allocation.slots[(product.product_id, 0, 2)].holder = "ord_drift"

    with caplog.at_level(logging.ERROR, logger="functions.reconcile.audit"):
        audit(fakes)

    (record,) = caplog.records
    assert record.getMessage() == "stock audit found a problem"
    assert record.product_id == product.product_id  # type: ignore[attr-defined]
