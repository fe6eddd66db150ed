"""Regression (audit repro C): a second payment for one order, reported once by reconcile's provider
query (event `query:<payment_id>`) and once by its real callback (another event id), is owed back
once: owed refunds are kept by provider and payment id, not by event id."""

from datetime import timedelta

from functions.reconcile.run import reconcile
from shared.adapters import payment_events
from shared.orders import utcnow
from shared.settings import settings
from tests.support import new_codes, stored_order


def test_a_second_payment_found_by_query_then_called_back_is_refunded_once(shop):
    product_id = shop.new_product(new_codes(2), shards=1)
    order = shop.buy(product_id)
    sandbox = shop.runtime.sandbox
    amount = order["total"]["amount"]
    sandbox.pay(order["order_id"], amount, "CNY", callback=False)  # the buyer pays twice,
    sandbox.pay(order["order_id"], amount, "CNY", callback=False)  # both callbacks late

    reconcile(settings(), utcnow() + timedelta(minutes=3))  # asks the provider: both payments found
    kept = stored_order(order["order_id"]).payment.payment_id
    (extra,) = [p for p in sandbox.payments_for(order["order_id"]) if p != kept]
    assert len(sandbox.refunds_for(extra)) == 1  # the extra payment was given back

    late = shop.payment_event(order, payment_id=extra)  # now the extra payment's real callback arrives
    assert shop.callback(late).json()["outcome"] == "needs_refund"  # recognised: it delivers nothing
    reconcile(settings(), utcnow() + timedelta(minutes=6))

    assert len(sandbox.refunds_for(extra)) == 1  # given back once, under one refund id
    owed = [o for p in ("sandbox", "sandbox#failed") for o in payment_events().owed(p, limit=None)]
    assert [o for o in owed if o.order_id == order["order_id"]] == []  # nothing left for an operator
