"""One rule set, every provider: the same hostile and out-of-order callbacks against each provider's
webhook on the local runtime, signed with each provider's real scheme (tests/providers/). Nothing is
delivered except for the valid payment, which is delivered exactly once however often it arrives."""

import logging
import threading
from datetime import timedelta

import pytest

from functions.reconcile.run import reconcile
from shared.adapters import payment_events
from shared.orders import utcnow
from shared.settings import settings
from tests.providers import Callback
from tests.providers.sandbox import Kit as SandboxKit
from tests.support import expire_all, new_codes, poll, stored_order

pytestmark = pytest.mark.e2e

PROVIDERS = ["sandbox", "stripe", "alipay", "wechatpay"]


@pytest.fixture(params=PROVIDERS)
def kit(request, kits, runtime):
    if request.param == "sandbox":
        return SandboxKit(runtime)
    if request.param not in kits:
        pytest.fail(f"no kit for {request.param} in tests/providers/")
    return kits[request.param]


def checkout(shop, kit, price: int = 1999, codes: int = 2) -> dict:
    product_id = shop.new_product(new_codes(codes), price=price, currency=kit.currency)
    response = shop.checkout(product_id, provider=kit.name)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["payment"]["provider"] == kit.name and order["payment"]["url"]
    return {**order, "product_id": product_id}


def post(shop, kit, callback: Callback):
    return shop.http.post(
        f"{shop.url}/webhooks/{kit.name}", data=callback.body, headers=callback.headers, timeout=30
    )


def assert_refused(response, code: str = "invalid_signature") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


def assert_untouched(shop, order: dict) -> None:
    """Still unpaid, no payment recorded, no event applied, its stock still only reserved."""
    stored = stored_order(order["order_id"])
    assert stored.status == "PENDING_PAYMENT" and stored.payment is None and len(stored.history) == 1
    assert shop.stock(order["product_id"])["sold"] == 0
    assert not any(order["order_id"] in key for key in payment_events().refunds_due(order["provider"]))


def test_a_valid_callback_delivers_the_order(shop, kit):
    order = checkout(shop, kit)
    response = post(shop, kit, kit.paid(order))
    assert kit.acknowledged(response.status_code, response.content), response.text
    delivered = shop.wait_for(order, "DELIVERED")
    assert len(delivered["items"]) == 1
    assert stored_order(order["order_id"]).payment.amount.amount == order["total"]["amount"]


def test_a_tampered_body_is_refused(shop, kit):
    order = checkout(shop, kit)
    assert_refused(post(shop, kit, kit.tampered(kit.paid(order))))
    assert_untouched(shop, {**order, "provider": kit.name})


def test_a_callback_signed_with_another_key_is_refused(shop, kit):
    order = checkout(shop, kit)
    assert_refused(post(shop, kit, kit.wrong_key(order)))
    assert_untouched(shop, {**order, "provider": kit.name})


def test_a_stale_callback_is_refused(shop, kit):
    order = checkout(shop, kit)
    stale = kit.stale(order)
    assert stale is not None, "every provider here signs a timestamp"
    assert_refused(post(shop, kit, stale))
    assert_untouched(shop, {**order, "provider": kit.name})


def assert_kept_for_refund(shop, order: dict, paid: dict) -> None:
    """Not applied (still unpaid, nothing sold), told in its history, and owed back to the buyer."""
    stored = stored_order(order["order_id"])
    assert stored.status == "PENDING_PAYMENT" and stored.payment is None
    assert [e.type for e in stored.history] == ["order.created", "payment.wrong_amount"]
    assert {k: stored.history[-1].data[k] for k in ("amount", "currency")} == paid
    assert shop.stock(order["product_id"])["sold"] == 0
    owed = [o for o in payment_events().owed(order["provider"]) if o.order_id == order["order_id"]]
    assert [(o.amount.amount, o.amount.currency) for o in owed] == [(paid["amount"], paid["currency"])]


def test_a_payment_of_another_amount_is_kept_for_refund_and_delivers_nothing(shop, kit):
    order = checkout(shop, kit)
    short = order["total"]["amount"] - 1
    response = post(shop, kit, kit.paid(order, amount=short))
    assert kit.acknowledged(response.status_code, response.content), response.text  # no retries
    again = post(shop, kit, kit.paid(order, amount=short))  # the provider's copy: the same payment
    assert kit.acknowledged(again.status_code, again.content), again.text
    assert_kept_for_refund(shop, {**order, "provider": kit.name}, {"amount": short, "currency": "CNY"})


def test_a_payment_in_another_currency_delivers_nothing(shop, kit):
    order = checkout(shop, kit)
    response = post(shop, kit, kit.paid(order, currency=kit.other_currency))
    if response.status_code == 400:  # a currency the provider's own rules refuse
        assert response.json()["error"]["code"] in {"bad_request", "currency_not_supported"}
        assert_untouched(shop, {**order, "provider": kit.name})
        return
    assert kit.acknowledged(response.status_code, response.content), response.text
    paid = {"amount": order["total"]["amount"], "currency": kit.other_currency}
    assert_kept_for_refund(shop, {**order, "provider": kit.name}, paid)


def test_a_payment_bound_to_another_order_delivers_neither(shop, kit):
    cheap, dear = checkout(shop, kit, price=100), checkout(shop, kit, price=9900)
    # The provider says it paid `dear`, at `cheap`'s price: a payment of the wrong amount for `dear`.
    wrong = post(shop, kit, kit.paid(cheap, order_id=dear["order_id"]))
    assert kit.acknowledged(wrong.status_code, wrong.content), wrong.text
    unknown = kit.paid(cheap, order_id="ord_" + "0" * 20)
    assert_refused(post(shop, kit, unknown), "unknown_order")
    assert_untouched(shop, {**cheap, "provider": kit.name})
    assert_kept_for_refund(shop, {**dear, "provider": kit.name}, {"amount": 100, "currency": "CNY"})


def test_a_duplicated_callback_is_applied_once(shop, kit):
    order = checkout(shop, kit, codes=5)
    callback = kit.paid(order)
    start, replies = threading.Barrier(6), []

    def send() -> None:
        start.wait()
        replies.append(post(shop, kit, callback))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies.append(post(shop, kit, kit.paid(order)))  # and a retry built again later

    assert all(kit.acknowledged(r.status_code, r.content) for r in replies), [r.text for r in replies]
    delivered = shop.wait_for(order, "DELIVERED")
    assert len(delivered["items"]) == 1
    assert [e["type"] for e in delivered["events"]].count("payment.succeeded") == 1
    assert poll(lambda: shop.stock(order["product_id"])["sold"] == 1)
    assert shop.stock(order["product_id"])["available"] == 4


def test_a_refund_before_the_payment_delivers_nothing_and_returns_the_stock(shop, kit):
    order = checkout(shop, kit)
    refund = post(shop, kit, kit.refunded(order))
    assert kit.acknowledged(refund.status_code, refund.content), refund.text
    assert stored_order(order["order_id"]).status == "REFUNDED"

    paid = post(shop, kit, kit.paid(order))  # the payment's own callback, late
    assert kit.acknowledged(paid.status_code, paid.content), paid.text

    stored = stored_order(order["order_id"])
    assert stored.status == "REFUNDED"
    assert "order.delivered" not in [event.type for event in stored.history]
    levels = shop.stock(order["product_id"])
    assert (levels["sold"], levels["reserved"]) == (0, 0)
    body = shop.order(order["order_id"], order["access_token"]).json()
    assert body["status"] == "REFUNDED" and "items" not in body


def test_a_signature_probe_is_refused(shop, kit):
    order = checkout(shop, kit)
    probe = kit.probe(order)
    if probe is None:
        pytest.skip(f"{kit.name} sends no signature probes")
    assert_refused(post(shop, kit, probe))
    assert_untouched(shop, {**order, "provider": kit.name})


def test_the_merchant_refunds_a_delivered_order_once(shop, kit):
    order = checkout(shop, kit)
    post(shop, kit, kit.paid(order))
    shop.wait_for(order, "DELIVERED")

    first = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/refund", json={"reason": "buyer asked"}
    )
    assert first.status_code in (200, 202), first.text
    if first.json()["status"] == "REFUNDING":  # the provider confirms later: by its callback
        confirmed = post(shop, kit, kit.refunded(order))
        assert kit.acknowledged(confirmed.status_code, confirmed.content), confirmed.text
    again = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/refund")

    assert (again.status_code, again.json()["status"]) == (200, "REFUNDED")
    assert again.json()["refund_id"] == first.json()["refund_id"]
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "REFUNDED"
    assert kit.refunded_amounts(order) == [order["total"]["amount"]]  # refunded once, in full


def test_a_lost_callback_is_found_by_asking_the_provider_and_counts_once(shop, kit):
    order = checkout(shop, kit)
    kit.lost(order)

    report = reconcile(settings(), utcnow() + timedelta(minutes=3))

    assert report["payments_recovered"] >= 1 and report["failed_steps"] == []
    delivered = shop.wait_for(order, "DELIVERED")
    late = post(shop, kit, kit.paid(order))  # the callback arrives after all
    assert kit.acknowledged(late.status_code, late.content), late.text
    history = [event.type for event in stored_order(order["order_id"]).history]
    assert history.count("payment.succeeded") == 1 and len(delivered["items"]) == 1
    assert not any(order["order_id"] in key for key in payment_events().refunds_due(kit.name))


def test_a_payment_that_cannot_be_fulfilled_is_refunded_through_its_provider_once(shop, kit):
    product_id = shop.new_product(new_codes(1), shards=1, currency=kit.currency)
    order = {**shop.checkout(product_id, provider=kit.name).json(), "product_id": product_id}
    expire_all()
    assert shop.checkout(product_id).status_code == 201  # the only code goes to someone else
    paid = post(shop, kit, kit.paid(order))  # the buyer paid just as the reservation ran out
    assert kit.acknowledged(paid.status_code, paid.content), paid.text
    assert stored_order(order["order_id"]).status == "REFUNDING"

    reconcile(settings(), utcnow())
    if stored_order(order["order_id"]).status == "REFUNDING":  # the provider confirms later
        reconcile(settings(), utcnow() + timedelta(minutes=3))
    reconcile(settings(), utcnow() + timedelta(minutes=10))

    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert kit.refunded_amounts(order) == [order["total"]["amount"]]


def test_the_payer_reaches_the_shop_and_no_log_line(shop, kit, caplog, capfd):
    """The buyer's account at the provider (docs/payments.md "Payer") is personal data: a payment
    whose callback names it, one found by asking the provider, and a refused copy leave it in no
    log record and no stray output."""
    caplog.set_level(logging.DEBUG)
    paid, lost = checkout(shop, kit), checkout(shop, kit)
    response = post(shop, kit, kit.paid(paid))
    assert kit.acknowledged(response.status_code, response.content), response.text
    assert_refused(post(shop, kit, kit.tampered(kit.paid(paid))))
    kit.lost(lost)
    reconcile(settings(), utcnow() + timedelta(minutes=3))
    shop.wait_for(paid, "DELIVERED")
    shop.wait_for(lost, "DELIVERED")

    out, err = capfd.readouterr()
    logs = "\n".join(repr(vars(record)) for record in caplog.records) + out + err
    assert paid["order_id"] in logs and lost["order_id"] in logs  # both payments were logged
    assert kit.buyer not in logs
