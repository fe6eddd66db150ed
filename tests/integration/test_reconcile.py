"""Reconcile finds and fixes what was lost (a delivery message, a callback), gives up on a paid order
only after bounded re-drives and per the product's policy, reports what it saw, and runs safely twice
at once. Runs are time-travelled with an explicit `now`; each test keeps one clock."""

import contextlib
import json
import threading
from datetime import datetime, timedelta

import boto3

from functions.reconcile.lost_payments import recover_payments
from functions.reconcile.redrive import redrive_paid
from functions.reconcile.run import reconcile
from shared import faults
from shared.adapters import allocation, ops, orders, payment_events, ports
from shared.adapters import products as product_store
from shared.orders import Status, utcnow
from shared.providers import ProviderUnavailable
from shared.providers.registry import provider
from shared.settings import settings
from shared.settlement import apply_payment
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import expire_all, new_codes, poll, stored_order


class LostQueue:
    """A delivery queue whose messages never arrive (as if each were lost)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, order_id: str) -> None:
        self.sent.append(order_id)


def lose_every_redrive(start: datetime) -> int:
    """Daily re-drive runs from `start` whose messages are all lost, until the bound is passed and the
    product's policy gives up; a crash injected in a run is that run dying. Returns the last day."""
    limit = settings().max_delivery_redrives
    for day in range(1, limit + 3):
        with contextlib.suppress(faults.InjectedFault):
            redrive_paid(
                orders(),
                LostQueue(),
                product_store(),
                allocation(),
                start + timedelta(days=day),
                timedelta(minutes=2),
                limit,
            )
    return limit + 2


def history(order: dict) -> list[str]:
    return [e.type for e in stored_order(order["order_id"]).history]


def test_a_paid_order_whose_delivery_message_was_lost_is_delivered(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)
    assert order["order_id"] not in orders().due(Status.PAID, before=utcnow())  # give delivery time first

    report = reconcile(settings(), utcnow() + timedelta(minutes=3))

    assert report["redriven"] >= 1
    shop.wait_for(order, "DELIVERED")
    assert history(order).count("order.delivered") == 1


def test_a_callback_that_never_came_is_recovered_by_asking_the_provider(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", callback=False)
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"  # the callback was lost

    report = reconcile(settings(), utcnow() + timedelta(minutes=3))

    assert report["payments_recovered"] >= 1
    delivered = shop.wait_for(order, "DELIVERED")
    assert len(delivered["items"]) == 1
    assert history(order).count("payment.succeeded") == 1


def test_an_order_paid_late_without_a_callback_is_asked_about_again_before_it_expires(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    now = utcnow()
    reconcile(settings(), now + timedelta(minutes=3))  # first question: not paid; waits for its expiry
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"

    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", callback=False)
    report = reconcile(settings(), now + timedelta(minutes=16))

    assert report["payments_recovered"] >= 1
    shop.wait_for(order, "DELIVERED")
    assert "reservation.expired" not in history(order)


def test_redrives_are_bounded_then_the_product_policy_refunds(shop):
    product_id = shop.new_product(new_codes(2))
    order = shop.buy(product_id)
    mark_paid_without_enqueueing(order)
    lost, now = LostQueue(), utcnow()
    limit, pause = settings().max_delivery_redrives, timedelta(minutes=2)

    for attempt in range(limit):
        now += pause * 2**attempt + timedelta(seconds=1)
        sent, gave_up = redrive_paid(orders(), lost, product_store(), allocation(), now, pause, limit)
        assert order["order_id"] not in gave_up
    assert lost.sent.count(order["order_id"]) == limit
    assert (
        redrive_paid(orders(), lost, product_store(), allocation(), now, pause, limit)[0] == 0
    )  # not due yet

    now += timedelta(hours=1)
    _, gave_up = redrive_paid(orders(), lost, product_store(), allocation(), now, pause, limit)

    # (an hour on, the sweep may also give up another file's PAID leftovers run on this worker)
    assert order["order_id"] in gave_up
    assert lost.sent.count(order["order_id"]) == limit
    assert stored_order(order["order_id"]).status == "REFUNDING"
    assert shop.stock(product_id)["available"] == 2  # its never-bound code went back
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "REFUNDING"


def test_a_product_that_holds_undeliverable_orders_sends_them_to_review(shop):
    created = shop.merchant(
        "POST",
        "/merchant/products",
        json={"name": "Top-up", "price": {"amount": 500, "currency": "CNY"}, "when_undeliverable": "hold"},
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data="\n".join(new_codes(1)).encode(),
        headers={"Content-Type": "text/plain"},
    )
    order = shop.buy(product_id)
    mark_paid_without_enqueueing(order)
    lost, limit = LostQueue(), settings().max_delivery_redrives

    for day in range(1, limit + 2):
        redrive_paid(
            orders(),
            lost,
            product_store(),
            allocation(),
            utcnow() + timedelta(days=day),
            timedelta(minutes=2),
            limit,
        )

    assert stored_order(order["order_id"]).status == "IN_REVIEW"
    assert shop.stock(product_id)["reserved"] == 1  # held for the operator, not given back


def test_two_runs_at_once_have_no_double_effects(shop):
    product_id = shop.new_product(new_codes(6), shards=1)
    lost_callback, lost_message, abandoned = (shop.buy(product_id) for _ in range(3))
    shop.runtime.sandbox.pay(
        lost_callback["order_id"], lost_callback["total"]["amount"], "CNY", callback=False
    )
    mark_paid_without_enqueueing(lost_message)
    now = utcnow() + timedelta(minutes=16)  # the abandoned order's reservation has run out
    barrier = threading.Barrier(2)
    reports: list[dict] = []

    def run() -> None:
        barrier.wait()
        reports.append(reconcile(settings(), now))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(reports) == 2
    shop.wait_for(lost_callback, "DELIVERED")
    shop.wait_for(lost_message, "DELIVERED")
    assert history(lost_callback).count("payment.succeeded") == 1
    assert history(lost_callback).count("order.delivered") == 1
    assert history(lost_message).count("order.delivered") == 1
    assert history(abandoned) == ["order.created", "reservation.expired"]
    assert sum(r["expired"] for r in reports) >= 1
    assert stored_order(lost_message["order_id"]).redrives == 1  # one run claimed the re-drive
    assert shop.stock(product_id) == {"available": 4, "reserved": 0, "sold": 2, "returned": 0, "imported": 6}
    for order in (lost_callback, lost_message, abandoned):
        assert orders().history_intact(order["order_id"])


def test_the_report_counts_open_orders_by_age_and_finds_stock_that_does_not_add_up(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    shop.buy(product_id)
    now = utcnow()

    report = reconcile(settings(), now + timedelta(minutes=4))
    assert report["orders"]["PENDING_PAYMENT"]["by_age"].get("1m_5m", 0) >= 1
    assert product_id not in report["stock_problems"]

    table = boto3.resource("dynamodb").Table(settings().stock_table)
    key = {"pk": f"{product_id}#shard#0000", "sk": "shard"}
    table.update_item(Key=key, UpdateExpression="ADD remaining :one", ExpressionAttributeValues={":one": 1})
    try:
        found = reconcile(settings(), now + timedelta(minutes=4))["stock_problems"]
    finally:
        table.update_item(
            Key=key, UpdateExpression="ADD remaining :one", ExpressionAttributeValues={":one": -1}
        )
    assert product_id in found and "remaining" in found[product_id][0]


def test_the_scheduled_run_emits_metrics_and_leaves_a_report(runtime, capsys):
    report = runtime.functions["ReconcileFunction"].invoke({"source": "test"})

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"StuckOrders", "Redriven", "Expired", "PaymentsRecovered", "StockAuditProblems"} <= names
    latest = poll(lambda: ops().reports("reconcile", limit=1))[0]
    assert latest["orders"] == report["orders"] and latest["redriven"] == report["redriven"]


def test_the_sandbox_pay_pages_lost_callback_button_pays_without_telling_the_shop(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    form = {"order_id": order["order_id"], "amount": order["total"]["amount"], "currency": "CNY"}

    paid = shop.http.post(f"{shop.url}/_sandbox/pay", data={**form, "callback": "lost"}, timeout=30)

    assert paid.status_code == 200
    assert shop.runtime.sandbox.payments_for(order["order_id"])
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"
    reconcile(settings(), utcnow() + timedelta(minutes=3))
    shop.wait_for(order, "DELIVERED")


def test_a_concurrent_run_never_gives_up_before_the_last_redrives_pause(shop, monkeypatch):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)
    lost, limit, pause = LostQueue(), 2, timedelta(minutes=2)
    now = utcnow() + timedelta(minutes=3)
    redrive_paid(orders(), lost, product_store(), allocation(), now, pause, limit)  # re-drive 1
    now += timedelta(minutes=5)
    # Run B reads the index and sees the order due ...
    (seen,) = [e for e in orders().outstanding(Status.PAID, before=now) if e.order_id == order["order_id"]]
    redrive_paid(
        orders(), lost, product_store(), allocation(), now, pause, limit
    )  # ... run A sends re-drive 2
    monkeypatch.setattr(orders(), "outstanding", lambda *a, **k: [seen])

    _, gave_up = redrive_paid(
        orders(), lost, product_store(), allocation(), now, pause, limit
    )  # ... run B goes on

    assert gave_up == [] and stored_order(order["order_id"]).status == "PAID"
    assert lost.sent.count(order["order_id"]) == 2


def test_a_payment_found_by_query_then_called_back_is_owed_back_once(runtime, shop):
    product_id = shop.new_product(new_codes(1), shards=1)
    order = shop.buy(product_id)
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", callback=False)
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    now = utcnow() + timedelta(minutes=16)
    reconcile(settings(), now)  # asks before expiring: paid, so delivered
    shop.wait_for(order, "DELIVERED")
    late = shop.payment_event(order, payment_id=payment_id)  # the real callback, long after
    assert shop.callback(late).status_code == 200
    assert history(order).count("payment.succeeded") == 1
    owed = [k for k in payment_events().refunds_due("sandbox") if order["order_id"] in k or late["id"] in k]
    assert owed == []


def test_the_same_late_payment_reported_twice_is_owed_back_once(runtime, shop):
    product_id = shop.new_product(new_codes(1), shards=1)
    order = shop.buy(product_id)
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", callback=False)
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    expire_all()
    shop.buy(product_id)  # the only code goes to someone else
    (found,) = provider("sandbox").query(order["order_id"])

    assert apply_recovered(found) == "needs_refund"  # late, sold out: REFUNDING, payment kept
    late = shop.payment_event(order, payment_id=payment_id)  # then its callback arrives after all
    assert shop.callback(late).json()["outcome"] == "applied"

    assert stored_order(order["order_id"]).status == "REFUNDING"
    owed = [k for k in payment_events().refunds_due("sandbox") if order["order_id"] in k]
    assert owed == [f"sandbox#{order['order_id']}#{payment_id}"]  # once, by payment


def test_a_provider_that_does_not_answer_is_asked_once_per_run_and_the_run_goes_on(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    unpaid = [shop.buy(product_id) for _ in range(3)]
    asked: list[str] = []

    class Down:
        def query(self, order_id: str):
            asked.append(order_id)
            raise ProviderUnavailable("no answer")

    now = utcnow() + timedelta(minutes=16)
    recovered, _ = recover_payments(orders(), lambda _: Down(), apply_recovered, now)
    expired, _ = expire_all(now)

    assert recovered == 0 and len(asked) == 1
    assert all(stored_order(o["order_id"]).status == "EXPIRED" for o in unpaid)
    assert expired >= 3


def apply_recovered(event):
    return apply_payment(event, ports(), now=utcnow(), redrive_after=timedelta(minutes=2))
