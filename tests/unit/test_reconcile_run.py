"""A whole reconcile run, with in-memory fakes (functions/reconcile/run.py and handler.py): the steps
run in an order that lets each finish what the one before found; calls to providers stop after their
share of the run's time and the other steps still run; a step that fails is named and the others
still run; the report is stored and its numbers emitted as metrics."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from functions.reconcile import handler, run
from functions.reconcile.run import PROVIDER_SHARE, reconcile
from shared import adapters
from shared.orders import Order, Status
from shared.products import Product
from shared.settings import Settings
from shared.settlement import Outcome, apply_payment
from tests.fakes import (
    REDRIVE_AFTER,
    REQUIRED_SETTINGS,
    RESERVATION,
    FakePorts,
    fake_ports,
    history,
    raises,
    stored,
)

CONFIG = Settings.model_validate(
    {**REQUIRED_SETTINGS, "REDRIVE_AFTER_SECONDS": 120, "MAX_DELIVERY_REDRIVES": 5}
)
STEPS = {  # each step's part of the report, as it stands when the step fails
    "lost_payments": {"payments_recovered": 0, "providers_asked": 0},
    "expiry": {"expired": 0, "returned_slots": 0},
    "redrive": {"redriven": 0, "gave_up": []},
    "refunds": {"refunded": 0, "refunds_waiting": 0},
    "owed_payments": {"owed_refunded": 0},
    "stock_audit": {"stock_problems": {}},
    "burned_slots": {"burned_returned": 0},
    "orders_by_age": {"orders": None},
}
GRACE = timedelta(minutes=5)


def reconcile_now(fakes: FakePorts, seconds: float = 45.0) -> dict[str, Any]:
    return reconcile(CONFIG, fakes.clock(), seconds, fakes)


def deadline(fakes: FakePorts, order: Order) -> datetime:
    entry = fakes.orders.due_entry(order.order_id)
    assert entry is not None
    return entry[1]


@dataclass
class Shop:
    """Something for every step to do at the clock's time."""

    unpaid: Order  # its reservation has just ended, nothing paid: expires
    lost_callback: Order  # paid, its callback lost: recovered
    lost_delivery: Order  # PAID, its delivery message lost: re-driven
    refunding: Order  # its refund not yet sent: refunded
    paid_twice: Order  # DELIVERED, and a second payment kept for refund: given back
    abandoned: Product  # a pooled code claimed by a checkout that died: returned


def busy_shop(fakes: FakePorts) -> Shop:
    product = fakes.add_product(codes=10)
    unpaid = fakes.add_order(product)
    abandoned = fakes.add_product(codes=1)
    fakes.add_order(abandoned, Status.EXPIRED)  # its code back in the pool
    fakes.clock.advance(minutes=8)
    with fakes.quietly():  # took the pooled code, then died before writing its order
        fakes.allocation.claim(abandoned.product_id, 1, 1, fakes.new_id("ord"))
    fakes.clock.advance(minutes=5)
    lost_callback = fakes.add_order(product)
    fakes.sandbox.pay(lost_callback)
    lost_delivery = fakes.add_order(product, Status.PAID)
    refunding = fakes.add_order(product, Status.REFUNDING)
    paid_twice = fakes.add_order(product, Status.DELIVERED)
    second = fakes.sandbox.payment(paid_twice, payment_id="pay_second")
    assert apply_payment(second, fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.NEEDS_REFUND
    fakes.allocation.add_codes("prd_orphan", ["CODE-X"], fakes.ciphers("mer_nobody"))  # stock, no product
    fakes.clock.now = unpaid.expires_at
    return Shop(unpaid, lost_callback, lost_delivery, refunding, paid_twice, abandoned)


class Monotonic:
    """The run's stopwatch (time.monotonic), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


# ---------- what a run does and reports ----------


def test_a_run_does_every_steps_work_and_reports_it(fakes):
    shop = busy_shop(fakes)

    report = reconcile_now(fakes)

    assert {k: v for k, v in report.items() if k != "orders"} == {
        "failed_steps": [],
        "payments_recovered": 1,
        "providers_asked": 2,  # the unpaid order, at its expiry, and the one whose callback was lost
        "expired": 1,
        "returned_slots": 1,
        "redriven": 1,
        "gave_up": [],
        "late_fulfilments": [],
        "reviews_expired": [],
        "refunded": 1,
        "refunds_waiting": 0,
        "owed_refunded": 1,
        "stock_problems": {"prd_orphan": ["stock without a product"]},
        "burned_returned": 1,
    }
    assert stored(fakes, shop.unpaid).status == Status.EXPIRED
    assert stored(fakes, shop.lost_callback).status == Status.PAID
    assert stored(fakes, shop.refunding).status == Status.REFUNDED
    assert fakes.delivery.sent == [shop.lost_callback.order_id, shop.lost_delivery.order_id]
    assert fakes.events.owed_payments("sandbox") == []
    assert fakes.allocation.levels(shop.abandoned.product_id).available == 1
    assert report["orders"]["PAID"] == {
        "count": 2,
        "oldest_seconds": 120,
        "by_age": {"1m_5m": 1, "under_1m": 1},
        "stuck": 0,
    }


def test_a_second_run_at_once_finds_nothing_more_to_do(fakes):
    busy_shop(fakes)
    first = reconcile_now(fakes)
    sent, refunds = list(fakes.delivery.sent), list(fakes.sandbox.refunds_sent)

    again = reconcile_now(fakes)

    nothing = {
        k: v for step in STEPS.values() for k, v in step.items() if k not in ("orders", "stock_problems")
    }
    assert {k: again[k] for k in nothing} == nothing
    assert again["stock_problems"] == first["stock_problems"]  # still there: reported every run
    assert fakes.delivery.sent == sent and fakes.sandbox.refunds_sent == refunds


# ---------- the order of the steps ----------


def test_a_payment_found_at_the_orders_expiry_is_applied_before_the_expiry_step(fakes):
    order = fakes.add_order(fakes.add_product())
    fakes.clock.advance(RESERVATION - timedelta(minutes=1))
    fakes.sandbox.pay(order)  # its callback is lost
    fakes.clock.now = order.expires_at

    report = reconcile_now(fakes)

    assert (report["payments_recovered"], report["expired"]) == (1, 0)
    assert stored(fakes, order).status == Status.PAID
    assert "reservation.expired" not in history(fakes, order)
    assert fakes.delivery.sent == [order.order_id]


def test_an_order_given_up_on_is_refunded_in_the_same_run(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    for _ in range(CONFIG.max_delivery_redrives):
        fakes.clock.now = deadline(fakes, order)
        assert reconcile_now(fakes)["redriven"] == 1
    fakes.clock.now = deadline(fakes, order)

    report = reconcile_now(fakes)

    assert report["gave_up"] == [order.order_id] and report["refunded"] == 1
    assert stored(fakes, order).status == Status.REFUNDED
    assert [r.order_id for r in fakes.sandbox.refunds_sent] == [order.order_id]
    assert fakes.allocation.levels(product.product_id).available == 3


def test_the_audit_reads_a_shard_before_the_burned_slot_step_settles_it(fakes):
    product = fakes.add_product(codes=3)
    fakes.add_order(product, Status.DELIVERED)
    assert reconcile_now(fakes)["stock_problems"] == {}
    fakes.allocation.slots[(product.product_id, 0, 2)].holder = "ord_drift"  # the counter drifted
    fakes.clock.advance(GRACE)

    report = reconcile_now(fakes)  # the run in which the shard is settled

    assert report["stock_problems"] == {
        product.product_id: ["shard 0 slot 2: taken (ord_drift) but above the cursor 1"]
    }


def test_a_stock_problem_is_reported_by_every_run_until_it_is_fixed(fakes):
    """The StockAudit alarm wants two runs in a row: the burned-slot step must not settle the shard the
    audit found wrong (it did, and the problem was reported once, never to alarm)."""
    product = fakes.add_product(codes=3)
    fakes.add_order(product, Status.DELIVERED)
    assert reconcile_now(fakes)["stock_problems"] == {}
    fakes.allocation.slots[(product.product_id, 0, 2)].holder = "ord_drift"  # the counter drifted

    reports = []
    for _ in range(3):
        fakes.clock.advance(GRACE)
        reports.append(reconcile_now(fakes)["stock_problems"])

    problem = {product.product_id: ["shard 0 slot 2: taken (ord_drift) but above the cursor 1"]}
    assert reports == [problem] * 3
    assert product.product_id in fakes.upkeep.shards_due()  # left due for an operator
    fakes.allocation.slots[(product.product_id, 0, 2)].holder = None  # an operator put it right
    fakes.clock.advance(GRACE)
    assert reconcile_now(fakes)["stock_problems"] == {}


# ---------- the providers' share of the run's time ----------


@pytest.mark.parametrize(("seconds", "asked"), [(100.0, 2), (1000.0, 4)])
def test_calls_to_providers_stop_after_their_share_of_the_run_and_the_other_steps_still_run(
    fakes, monkeypatch, seconds, asked
):
    stopwatch = Monotonic()
    monkeypatch.setattr(run, "time", stopwatch)
    product = fakes.add_product(codes=10)
    unpaid = fakes.add_order(product)
    fakes.clock.advance(RESERVATION - timedelta(minutes=2))
    waiting = [fakes.add_order(product) for _ in range(3)]
    for order in waiting:
        fakes.sandbox.pay(order)
    late = fakes.add_order(product, Status.PAID)
    refunding = fakes.add_order(product, Status.REFUNDING)
    fakes.clock.now = unpaid.expires_at
    # Each question takes 60% of the providers' share of a 100-second run: that share is spent after two.
    slow = 100 * PROVIDER_SHARE * 0.6
    fakes.sandbox.after("query", lambda *args, **kwargs: setattr(stopwatch, "now", stopwatch.now + slow))

    report = reconcile_now(fakes, seconds=seconds)

    assert report["providers_asked"] == asked
    assert [c.args[0] for c in fakes.sandbox.called("query")] == [
        unpaid.order_id,
        *(o.order_id for o in waiting),
    ][:asked]
    assert report["refunded"] == (1 if asked == 4 else 0)
    assert stored(fakes, refunding).status == (Status.REFUNDED if asked == 4 else Status.REFUNDING)
    for order in waiting[asked - 1 :]:  # not asked: due now, asked next run
        assert fakes.orders.due_entry(order.order_id) == (Status.PENDING_PAYMENT, fakes.clock())
    # The steps that call no provider ran all the same.
    assert (report["expired"], report["redriven"], report["failed_steps"]) == (1, 1, [])
    assert late.order_id in fakes.delivery.sent and report["orders"] is not None


# ---------- a step that fails ----------


def fail_outstanding(status: Status | None, error: Exception) -> Any:
    """A hook on `outstanding` that fails one step's read: the step that reads `status` with a
    deadline, or (None) the report's read of every state, which has none."""

    def action(listed: Status, before: datetime | None = None, limit: int | None = None) -> None:
        if (status is None and before is None) or (listed == status and before is not None):
            raise error

    return action


def break_step(fakes: FakePorts, step: str) -> None:
    error = ConnectionError(f"{step}: throttled")
    if step == "lost_payments":
        fakes.orders.before("outstanding", fail_outstanding(Status.PENDING_PAYMENT, error))
    elif step == "expiry":
        fakes.orders.before("due", raises(error))
    elif step == "redrive":
        fakes.orders.before("outstanding", fail_outstanding(Status.PAID, error))
    elif step == "refunds":
        fakes.orders.before("outstanding", fail_outstanding(Status.REFUNDING, error))
    elif step == "owed_payments":
        fakes.events.before("owed", raises(error))
    elif step == "stock_audit":
        fakes.upkeep.before("audit_holds", raises(error))
    elif step == "burned_slots":
        fakes.upkeep.before("return_abandoned_holds", raises(error))
    else:
        fakes.orders.before("outstanding", fail_outstanding(None, error))


@pytest.mark.parametrize("step", list(STEPS))
def test_a_step_that_fails_is_named_and_every_other_step_still_does_its_work(step):
    healthy = fake_ports()
    busy_shop(healthy)
    expected = reconcile_now(healthy)
    fakes = fake_ports()
    busy_shop(fakes)
    break_step(fakes, step)

    report = reconcile_now(fakes)

    assert report["failed_steps"] == [step]
    assert {k: report[k] for k in STEPS[step]} == STEPS[step]
    for other in STEPS:
        if other not in (step, "orders_by_age"):
            assert {k: report[k] for k in STEPS[other]} == {k: expected[k] for k in STEPS[other]}
    assert (report["orders"] is None) == (step == "orders_by_age")


# ---------- the handler: report stored, metrics emitted ----------


@dataclass
class Context:
    function_name: str = "ReconcileFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ReconcileFunction"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class FakeOps:
    def __init__(self) -> None:
        self.saved: list[tuple[str, datetime, dict[str, Any]]] = []

    def save_report(self, kind: str, at: datetime, report: dict[str, Any]) -> None:
        self.saved.append((kind, at, report))


@pytest.fixture
def ops(fakes, monkeypatch) -> FakeOps:
    store = FakeOps()
    monkeypatch.setattr(adapters, "ports", lambda: fakes)
    monkeypatch.setattr(adapters, "ops", lambda: store)
    monkeypatch.setattr(handler, "settings", lambda: CONFIG)
    return store


def emitted(output: str) -> dict[str, float]:
    """The metrics of the EMF documents printed, by name."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == "miaofa" and directive["Dimensions"] == [["service"]]
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    values[metric["Name"]] = value[0] if isinstance(value, list) else value
    return values


def test_the_scheduled_run_stores_its_report_and_emits_its_numbers(fakes, ops, capsys):
    busy_shop(fakes)
    capsys.readouterr()

    report = handler.lambda_handler({"source": "aws.scheduler"}, Context())

    assert ops.saved == [("reconcile", fakes.clock(), report)]
    assert emitted(capsys.readouterr().out) == {
        "PaymentsRecovered": 1,
        "Expired": 1,
        "SlotsReturned": 2,  # the expired order's and the abandoned hold
        "Redriven": 1,
        "GaveUp": 0,
        "FulfilmentsLate": 0,
        "ReviewsExpired": 0,
        "Refunded": 2,  # the refunding order and the second payment
        "RefundsWaiting": 0,
        "StuckOrders": 0,
        "StockAuditProblems": 1,
        "OldestPaidSeconds": 120,
        "FailedSteps": 0,
    }


def test_a_run_with_a_failed_step_still_stores_and_emits_then_fails_the_invocation(fakes, ops, capsys):
    fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(minutes=10)
    break_step(fakes, "orders_by_age")
    capsys.readouterr()

    with pytest.raises(handler.StepsFailed, match="orders_by_age"):
        handler.lambda_handler({"source": "aws.scheduler"}, Context())

    ((_, _, report),) = ops.saved
    assert report["failed_steps"] == ["orders_by_age"] and report["redriven"] == 1
    metrics = emitted(capsys.readouterr().out)
    assert (metrics["FailedSteps"], metrics["Redriven"], metrics["StuckOrders"]) == (1, 1, 0)
