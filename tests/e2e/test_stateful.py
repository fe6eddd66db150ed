"""Random interleavings of checkout, pay, duplicate pay, expire, redeliver and reconcile against the
local runtime (issue 3). After every step: stock adds up (I4), no code is bound to two orders and a
delivered order holds exactly its quantity (I1), histories verify (I7). At the end: every order paid
in time is DELIVERED, every late one DELIVERED or REFUNDING (I2), every unpaid one PENDING or EXPIRED."""

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from functions.reconcile.expiry import expire_reservations
from functions.reconcile.redrive import redrive_paid
from shared.adapters import delivery_queue, orders, stock
from shared.adapters import shop as shop_store
from shared.orders import utcnow
from tests.support import event, new_codes, poll, stored_order

pytestmark = pytest.mark.e2e


def test_random_interleavings_keep_the_invariants(shop):
    class Shop(RuleBasedStateMachine):
        placed = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            self.codes = new_codes(6)
            self.product_id = shop.new_product(self.codes, shards=2, max_per_order=2)
            self.paid: dict[str, dict] = {}  # order id -> the payment event sent
            self.late: set[str] = set()  # paid after its reservation expired
            self.expired: set[str] = set()
            self.all: list[dict] = []

        @rule(target=placed, quantity=st.integers(1, 2))
        def checkout(self, quantity):
            response = shop.checkout(self.product_id, quantity, email=f"s{len(self.all)}@example.com")
            assert response.status_code in (201, 409), response.text
            if response.status_code == 409:
                return None
            self.all.append(response.json())
            return response.json()

        @rule(order=placed)
        def pay(self, order):
            if order is None or order["order_id"] in self.paid:
                return
            payment = shop.payment_event(order)
            assert shop.callback(payment).status_code == 200
            self.paid[order["order_id"]] = payment
            if order["order_id"] in self.expired:
                self.late.add(order["order_id"])

        @rule(order=placed)
        def pay_again(self, order):
            if order is not None and order["order_id"] in self.paid:
                response = shop.callback(self.paid[order["order_id"]])
                assert response.json()["outcome"] == "duplicate"

        @rule()
        def expire(self):
            expire_reservations(orders(), stock(), now=utcnow() + timedelta(minutes=16))
            for order in self.all:
                if stored_order(order["order_id"]).status == "EXPIRED" or order["order_id"] in self.expired:
                    self.expired.add(order["order_id"])

        @rule(order=placed)
        def redeliver(self, order):
            if order is None:
                return
            batch = event("sqs_delivery_batch")
            batch["Records"][0]["body"] = json.dumps({"order_id": order["order_id"]})
            assert shop.runtime.functions["DeliverFunction"].invoke(batch) == {"batchItemFailures": []}

        @rule()
        def reconcile(self):
            redrive_paid(
                orders(),
                delivery_queue(),
                shop_store(),
                stock(),
                now=utcnow() + timedelta(minutes=3),
                retry_after=timedelta(minutes=2),
                max_redrives=5,
            )

        @invariant()
        def stock_adds_up_and_no_code_is_sold_twice(self):
            levels = shop.stock(self.product_id)
            assert min(levels.values()) >= 0
            assert levels["available"] + levels["reserved"] + levels["sold"] + levels["returned"] == 6
            bound: list[str] = []
            for order in self.all:
                record = stored_order(order["order_id"])
                assert orders().history_intact(record.order_id)
                assert [e.type for e in record.history].count("order.delivered") <= 1
                if record.status == "DELIVERED":
                    cipher = shop_store().cipher(record.merchant_id)
                    codes = stock().read_codes(record.product_id, record.slots, record.order_id, cipher)
                    assert len(codes) == record.quantity
                    bound += codes
            assert len(bound) == len(set(bound)) and set(bound) <= set(self.codes)

        def teardown(self):
            def settled():
                self.reconcile()
                states = {o["order_id"]: stored_order(o["order_id"]).status for o in self.all}
                return ("settled", states) if "PAID" not in states.values() else None

            _, states = poll(settled, deadline=30, every=0.2)
            for order_id, status in states.items():
                if order_id in self.late:
                    assert status in ("DELIVERED", "REFUNDING"), (order_id, status)
                elif order_id in self.paid:
                    assert status == "DELIVERED", (order_id, status)
                else:
                    assert status in ("PENDING_PAYMENT", "EXPIRED"), (order_id, status)

    run_state_machine_as_test(
        Shop,
        settings=settings(
            max_examples=12, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
