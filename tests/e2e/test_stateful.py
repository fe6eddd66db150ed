"""Random interleavings against the local runtime (issues 3 and 14): several buyers checking out,
provider callbacks (and their repeats), expiries, deliveries and whole reconcile runs, some of them
racing each other in real threads, with crash points armed as rules. After every step: no code is
bound to two orders and a delivered order holds exactly its quantity (I1), nothing is delivered
without a payment of its exact amount (I3), a payment is applied once (I5), stock adds up and the
real stock audit — against the slots actually there — finds nothing (I4), histories verify (I7).
At the end, after reconciliation: every paid order is DELIVERED or refunded (I2), every unpaid one
PENDING or EXPIRED, and the audit is clean far in the future."""

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from functions.reconcile.audit import audit_stock
from functions.reconcile.burned import GRACE_SECONDS, claimants
from functions.reconcile.expiry import expire_reservations
from functions.reconcile.run import reconcile as reconcile_run
from shared import faults
from shared.adapters import allocation, orders, stock_upkeep
from shared.adapters import merchants as merchant_store
from shared.adapters import products as product_store
from shared.orders import utcnow
from shared.providers.signatures import sandbox_signature
from shared.settings import settings as shop_settings
from tests.support import event, new_codes, poll, stored_order

pytestmark = pytest.mark.e2e
CODES = 6
PAID_LIKE = {"PAID", "DELIVERED", "REFUNDING", "REFUNDED", "IN_REVIEW"}
CRASHABLE = [p for p in faults.POINTS + faults.EDGE_POINTS if not p.startswith("refund:")]


def test_random_interleavings_keep_the_invariants(shop):
    def checkout(product_id: str, quantity: int, n: int) -> dict | None:
        """A buyer's checkout, retried once with the same Idempotency-Key after a 500 (a crash)."""
        body = {"product_id": product_id, "quantity": quantity, "email": f"s{n}@example.com"}
        headers = {"Idempotency-Key": secrets.token_hex(16)}
        for _ in range(2):
            response = requests.post(f"{shop.url}/api/orders", json=body, headers=headers, timeout=30)
            if response.status_code == 201:
                return response.json()
            assert response.status_code in (409, 500), response.text
            if response.status_code == 409:
                return None
        return None

    def callback(body: dict) -> dict:
        """The provider's callback, retried after a 500 as providers do."""
        raw = json.dumps(body).encode()
        for _ in range(3):
            signature = sandbox_signature(shop.runtime.sandbox_secret, raw, int(time.time()))
            response = requests.post(
                f"{shop.url}/webhooks/sandbox",
                data=raw,
                timeout=30,
                headers={"Content-Type": "application/json", "Sandbox-Signature": signature},
            )
            if response.status_code == 200:
                return response.json()
            assert response.status_code == 500, response.text
        raise AssertionError("the callback never went through")

    def run_reconcile(after: timedelta) -> None:
        reconcile_run(shop_settings(), utcnow() + after)  # a crash in a step fails only that step

    class Shop(RuleBasedStateMachine):
        placed = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            self.codes = new_codes(CODES)
            self.product_id = shop.new_product(self.codes, shards=2, max_per_order=2)
            self.paid: dict[str, dict] = {}  # order id -> the payment event sent
            self.all: list[dict] = []
            self.lock = threading.Lock()

        # ---- actions, each safe to run in a thread of its own
        def _checkout(self, quantity: int) -> dict | None:
            with self.lock:
                n = len(self.all)
            placed = checkout(self.product_id, quantity, n)
            if placed is not None:
                with self.lock:
                    self.all.append(placed)
            return placed

        def _pay(self, order: dict | None) -> None:
            if order is None:
                return
            with self.lock:
                if order["order_id"] not in self.paid:  # a payment the provider took: it can refund it
                    self.paid[order["order_id"]] = shop.payment_event(order)
                    shop.runtime.sandbox.take(self.paid[order["order_id"]]["data"])
                payment = self.paid[order["order_id"]]
            assert callback(payment)["outcome"] in ("applied", "duplicate", "needs_refund")

        def _pay_again(self, order: dict | None) -> None:
            if order is not None and order["order_id"] in self.paid:
                assert callback(self.paid[order["order_id"]])["outcome"] in ("duplicate", "applied")

        def _expire(self) -> None:
            with contextlib.suppress(faults.InjectedFault):  # a direct call: the process died there
                expire_reservations(orders(), allocation(), now=utcnow() + timedelta(minutes=16))

        def _redeliver(self, order: dict | None) -> None:
            if order is None:
                return
            batch = event("sqs_delivery_batch")
            batch["Records"][0]["body"] = json.dumps({"order_id": order["order_id"]})
            shop.runtime.functions["DeliverFunction"].invoke(batch)  # a crash: the message is retried

        # ---- rules
        @rule(target=placed, quantity=st.integers(1, 2))
        def buy(self, quantity):
            return self._checkout(quantity)

        @rule(order=placed)
        def pay(self, order):
            self._pay(order)

        @rule(order=placed)
        def pay_again(self, order):
            self._pay_again(order)

        @rule()
        def expire(self):
            self._expire()

        @rule(order=placed)
        def redeliver(self, order):
            self._redeliver(order)

        @rule(minutes=st.sampled_from([3, 16, 40]))
        def reconcile(self, minutes):
            run_reconcile(timedelta(minutes=minutes))

        @rule(point=st.sampled_from(CRASHABLE))
        def crash_next(self, point):
            faults.arm(point)  # whichever thread reaches it next dies there

        @rule(
            data=st.data(),
            kinds=st.lists(
                st.sampled_from(["buy", "pay", "pay_again", "expire", "reconcile"]), min_size=2, max_size=4
            ),
        )
        def race(self, data, kinds):
            """Several of the above at once, in real threads, released together."""
            known = list(self.all)
            work: list[Callable[[], object]] = []
            for kind in kinds:
                target = data.draw(st.sampled_from(known)) if known and kind in ("pay", "pay_again") else None
                work.append(
                    {
                        "buy": lambda: self._checkout(1),
                        "pay": lambda t=target: self._pay(t),
                        "pay_again": lambda t=target: self._pay_again(t),
                        "expire": self._expire,
                        "reconcile": lambda: run_reconcile(timedelta(minutes=3)),
                    }[kind]
                )
            start, failures = threading.Barrier(len(work)), []

            def run(task):
                start.wait()
                try:
                    task()
                except faults.InjectedFault:
                    pass  # a crash in a direct call: the process died there
                except Exception as error:  # noqa: BLE001 - reported below, in the test's thread
                    failures.append(error)

            threads = [threading.Thread(target=run, args=(task,)) for task in work]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failures, failures

        # ---- after every step
        @invariant()
        def invariants_hold(self):
            levels = shop.stock(self.product_id)
            assert min(levels.values()) >= 0
            assert (
                sum(levels[k] for k in ("available", "reserved", "sold", "returned"))
                == CODES
                == levels["imported"]
            )
            bound: list[str] = []
            for order in list(self.all):
                record = stored_order(order["order_id"])
                types = [e.type for e in record.history]
                assert orders().history_intact(record.order_id)  # I7
                assert types.count("order.delivered") <= 1 and types.count("payment.succeeded") <= 1  # I5
                if record.status == "DELIVERED":  # I3, I1
                    assert record.payment is not None and record.payment.amount == record.total
                    cipher = merchant_store().cipher(record.merchant_id)
                    codes = allocation().read_codes(record.product_id, record.slots, record.order_id, cipher)
                    assert len(codes) == record.quantity
                    bound += codes
            assert len(bound) == len(set(bound)) and set(bound) <= set(self.codes)
            # I4: the product's slots as reconcile's audit checks them (the shop-wide part, pooled
            # slots claimed again, is checked at the end: it reads every product's holds).
            at = int(utcnow().timestamp())
            assert stock_upkeep().audit(self.product_id, 2, claimants(orders()), at, GRACE_SECONDS) == []

        def teardown(self):
            faults_left = faults.armed()
            faults.disarm()
            late = timedelta(minutes=40)

            def settled():
                nonlocal late
                run_reconcile(late)
                late += timedelta(minutes=10)
                states = {o["order_id"]: stored_order(o["order_id"]).status for o in self.all}
                return ("settled", states) if not {"PAID", "REFUNDING"} & set(states.values()) else None

            _, states = poll(settled, deadline=60, every=0.2)
            for order_id, status in states.items():
                if order_id in self.paid:  # I2
                    assert status in ("DELIVERED", "REFUNDED"), (order_id, status, faults_left)
                else:
                    assert status in ("PENDING_PAYMENT", "EXPIRED"), (order_id, status)
            for _ in range(3):  # burned slots age past the grace period and come back
                late += timedelta(minutes=10)
                run_reconcile(late)
            assert (
                audit_stock(product_store(), stock_upkeep(), orders(), [self.product_id], utcnow() + late)
                == {}
            )

    run_state_machine_as_test(
        Shop,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # CI runs the same 12 interleavings every time (a gate must not fail on a new draw);
            # elsewhere each run draws new ones, and a failure prints its steps to make a test of.
            derandomize=os.environ.get("CI") == "true",
        ),
    )
