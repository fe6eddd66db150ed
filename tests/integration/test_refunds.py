"""Refunds against the sandbox on the local runtime: every payment the shop cannot fulfil goes back
to the buyer exactly once — automatically through reconcile, or when the merchant asks — however
often it is attempted, and after a crash between sending a refund and recording its answer."""

import secrets
from datetime import timedelta

import pytest

from functions.reconcile.run import reconcile
from functions.storefront.checkout import CheckoutRequest, checkout
from shared import faults
from shared.adapters import allocation, limits, orders, payment_events
from shared.adapters import merchants as merchant_store
from shared.adapters import products as product_store
from shared.errors import ProviderDown, TooMany
from shared.orders import Payment, utcnow
from shared.providers import ProviderUnavailable
from shared.refunds import MAX_REFUND_ATTEMPTS, refund_id_for
from shared.settings import settings
from tests.support import expire_all, new_codes, poll, stored_order


def paid_after_it_sold_out(shop) -> tuple[dict, str]:
    """An order paid after its reservation expired and its only code went to someone else: REFUNDING."""
    product_id = shop.new_product(new_codes(1), shards=1)
    order = shop.buy(product_id)
    expire_all()
    shop.buy(product_id)  # the code goes to another buyer
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    assert poll(lambda: stored_order(order["order_id"]).status == "REFUNDING")
    return order, payment_id


def test_an_order_that_cannot_be_fulfilled_is_refunded_once_by_reconcile(shop):
    order, payment_id = paid_after_it_sold_out(shop)

    first = reconcile(settings(), utcnow())
    again = reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert first["refunded"] >= 1 and "refunds" not in first["failed_steps"]
    (refund,) = shop.runtime.sandbox.refunds_for(payment_id)
    assert (refund["amount"], refund["refund_id"]) == (order["total"]["amount"], f"rf_{order['order_id']}")
    assert again["failed_steps"] == []
    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "REFUNDED"
    # The payment kept for refund is the order's own: refunded with it, no longer owed.
    assert not any(order["order_id"] in key for key in payment_events().refunds_due("sandbox"))


def test_a_crash_after_sending_a_refund_does_not_refund_twice(shop):
    order, payment_id = paid_after_it_sold_out(shop)
    faults.arm("refund:after-sent")

    crashed = reconcile(settings(), utcnow())
    assert "refunds" in crashed["failed_steps"] and faults.armed() == set()
    assert stored_order(order["order_id"]).status == "REFUNDING"  # the answer was never recorded
    reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert len(shop.runtime.sandbox.refunds_for(payment_id)) == 1


def test_a_second_payment_for_one_order_is_given_back(shop):
    order = shop.buy(shop.new_product(new_codes(2)))
    sandbox = shop.runtime.sandbox
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")  # the buyer paid twice
    kept = stored_order(order["order_id"]).payment.payment_id
    (extra,) = [payment_id for payment_id in sandbox.payments_for(order["order_id"]) if payment_id != kept]

    report = reconcile(settings(), utcnow())
    reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert report["owed_refunded"] >= 1
    assert sandbox.refunds_for(kept) == []  # the delivered order's payment stays
    (refund,) = sandbox.refunds_for(extra)
    assert refund["amount"] == order["total"]["amount"]
    assert stored_order(order["order_id"]).status == "DELIVERED"


# ---------------------------------------------------------------- the merchant asks


def refund(shop, order_id: str, key: str | None = None, **kwargs):
    return shop.merchant("POST", f"/merchant/orders/{order_id}/refund", key=key, **kwargs)


def paid_not_delivered(shop, order: dict) -> None:
    """Paid at the sandbox, its delivery not yet run (as while the delivery message is in flight)."""
    record = stored_order(order["order_id"])
    payment_id = f"pay_{secrets.token_hex(6)}"
    with shop.runtime.sandbox._lock:
        shop.runtime.sandbox.payments[payment_id] = {
            "order_id": order["order_id"],
            "payment_id": payment_id,
            "amount": order["total"]["amount"],
            "currency": "CNY",
        }
    payment = Payment(
        provider="sandbox", payment_id=payment_id, event_id=f"evt_{payment_id}", amount=record.total
    )
    orders().transition(record, "payment.succeeded", utcnow(), payment=payment, due_in=timedelta(minutes=2))


def test_a_merchant_refund_of_a_paid_order_returns_its_unbound_stock(shop):
    product_id = shop.new_product(new_codes(2))
    order = shop.buy(product_id)
    paid_not_delivered(shop, order)

    response = refund(shop, order["order_id"], json={"reason": "duplicate purchase"})

    assert (response.status_code, response.json()["status"]) == (200, "REFUNDED"), response.text
    assert shop.stock(product_id)["available"] == 2 and shop.stock(product_id)["reserved"] == 0
    events = [e.type for e in stored_order(order["order_id"]).history]
    assert events[-2:] == ["refund.requested", "refund.confirmed"]


def test_another_merchants_order_is_not_found_and_unchanged(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    _, other_key = merchant_store().create_merchant("Merchant C")

    response = refund(shop, order["order_id"], key=other_key)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "order_not_found")
    assert stored_order(order["order_id"]).status == "DELIVERED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": "x" * 201}, 422, "invalid_reason"),
        ({"refund_everything": True}, 422, "invalid_refund_everything"),
        ("not json", 400, "malformed_json"),
    ],
)
def test_a_bad_refund_request_changes_nothing(shop, body, status, code):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}

    response = refund(shop, order["order_id"], **kwargs)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert stored_order(order["order_id"]).status == "DELIVERED"


def test_an_unpaid_order_cannot_be_refunded(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    response = refund(shop, order["order_id"])
    assert (response.status_code, response.json()["error"]["code"]) == (409, "not_refundable")
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"


# ---------------------------------------------------------------- found in review: each failed before


def test_a_refund_the_provider_fails_is_sent_again_as_the_next_attempt_then_left_to_an_operator(shop):
    sandbox = shop.runtime.sandbox
    order, payment_id = paid_after_it_sold_out(shop)
    sandbox.refund_outcome = "failed"  # e.g. the buyer's card was closed
    try:
        now = utcnow()
        for hour in range(MAX_REFUND_ATTEMPTS + 2):
            reconcile(settings(), now + timedelta(hours=hour, minutes=1))
        stored = stored_order(order["order_id"])
        assert stored.status == "REFUNDING" and "no further attempt" in stored.refund_error
        tried = sorted(r["refund_id"] for r in sandbox.refunds.values() if r["payment_id"] == payment_id)
        assert tried == sorted(refund_id_for(order["order_id"], n) for n in range(MAX_REFUND_ATTEMPTS))
    finally:
        sandbox.refund_outcome = "succeeded"


def test_a_failed_refund_that_succeeds_on_its_next_attempt_refunds_once(shop):
    sandbox = shop.runtime.sandbox
    order, payment_id = paid_after_it_sold_out(shop)
    sandbox.refund_outcome = "failed"
    try:
        reconcile(settings(), utcnow())
    finally:
        sandbox.refund_outcome = "succeeded"
    reconcile(settings(), utcnow() + timedelta(hours=1, minutes=1))

    assert stored_order(order["order_id"]).status == "REFUNDED"
    (refund,) = sandbox.refunds_for(payment_id)
    assert refund["refund_id"] == refund_id_for(order["order_id"], 1)


class DownProvider:
    """A provider peer that never answers (as during an outage)."""

    name = "sandbox"

    def start(self, order, return_url):
        raise ProviderUnavailable("sandbox call failed: ConnectTimeoutError")


def test_a_checkout_whose_payment_cannot_be_started_keeps_its_place_in_the_buyers_cap(shop):
    product_id = shop.new_product(new_codes(5))
    request = CheckoutRequest(product_id=product_id, quantity=1, email="outage@example.com")

    def attempt(providers):
        return checkout(
            request,
            product_store(),
            allocation(),
            orders(),
            limits(),
            now=utcnow(),
            reservation=timedelta(minutes=15),
            providers=providers,
            public_base_url="http://127.0.0.1",
            client="198.51.100.40",
            caps=(1, 1),
        )

    with pytest.raises(ProviderDown):
        attempt(lambda name: DownProvider())
    with pytest.raises(TooMany):  # the unpaid order still holds the buyer's one place
        attempt(lambda name: DownProvider())
    assert shop.stock(product_id)["reserved"] == 1


def test_a_refund_callback_retried_after_a_crash_still_returns_the_stock(shop, monkeypatch):
    from shared.adapters import ports
    from shared.money import Money
    from shared.payments import PaymentEvent
    from shared.settlement import Outcome, apply_refund

    product_id = shop.new_product(new_codes(2))
    order = shop.buy(product_id)
    refund = PaymentEvent(
        provider="sandbox",
        event_id=f"evt_{secrets.token_hex(6)}",
        type="refund.succeeded",
        order_id=order["order_id"],
        payment_id=f"pay_{secrets.token_hex(6)}",
        amount=Money(amount=order["total"]["amount"], currency="CNY"),
    )
    bound = ports()
    release = bound.allocation.release
    crashes = iter([True])

    def crash_once(*args, **kwargs):
        if next(crashes, False):
            raise faults.InjectedFault("between the REFUNDED write and the release")
        return release(*args, **kwargs)

    monkeypatch.setattr(bound.allocation, "release", crash_once)
    with pytest.raises(faults.InjectedFault):
        apply_refund(refund, bound, utcnow())
    assert stored_order(order["order_id"]).status == "REFUNDED"

    assert apply_refund(refund, bound, utcnow()) == Outcome.REFUNDED  # the provider sends it again
    assert shop.stock(product_id)["reserved"] == 0


def test_a_refund_of_a_payment_kept_for_refund_is_acknowledged_and_settles_it(shop):
    sandbox = shop.runtime.sandbox
    order = shop.buy(shop.new_product(new_codes(2)))
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")  # paid twice
    kept = stored_order(order["order_id"]).payment.payment_id
    (extra,) = [payment_id for payment_id in sandbox.payments_for(order["order_id"]) if payment_id != kept]
    assert any(order["order_id"] in o.order_id for o in payment_events().owed("sandbox", limit=None))

    refunded = shop.payment_event(order, payment_id=extra)  # refunded from the provider's dashboard
    refunded["type"] = "refund.succeeded"
    answer = shop.callback(refunded)

    assert (answer.status_code, answer.json()["outcome"]) == (200, "owed_refunded")
    assert not any(o.order_id == order["order_id"] for o in payment_events().owed("sandbox", limit=None))
    assert stored_order(order["order_id"]).status == "DELIVERED"


def test_one_refused_owed_refund_does_not_hold_up_the_others(shop):
    sandbox = shop.runtime.sandbox
    extras = []
    for _ in range(2):
        order = shop.buy(shop.new_product(new_codes(2)))
        assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        shop.wait_for(order, "DELIVERED")
        assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        kept = stored_order(order["order_id"]).payment.payment_id
        extras += [p for p in sandbox.payments_for(order["order_id"]) if p != kept]
    with sandbox._lock:  # the first was refunded at the provider already: a refund of it is refused
        sandbox.refunds["rf_dashboard"] = {
            "refund_id": "rf_dashboard",
            "payment_id": extras[0],
            "amount": 1999,
            "status": "succeeded",
        }

    reconcile(settings(), utcnow())

    assert len(sandbox.refunds_for(extras[1])) == 1
    failed = payment_events().owed("sandbox#failed", limit=None)
    assert [o.payment_id for o in failed if o.payment_id in extras] == [extras[0]]
