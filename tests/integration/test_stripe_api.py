"""The shop's calls to Stripe, against the kit's fake Stripe on 127.0.0.1: what is sent, what an
answer means, and how failures surface. The Stripe SDK talks to the same fake, so the fake speaks
the format Stripe's own client expects."""

import json
import time

import pytest
import stripe
import urllib3

from shared.errors import BadInput
from shared.orders import Order
from shared.providers import (
    ProviderRefused,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    UnexpectedAnswer,
)
from shared.providers.config import StripeConfig
from shared.providers.http import new_pool
from shared.providers.stripe import StripeProvider
from tests.providers import as_checkout, running, shop_order
from tests.providers.stripe import Kit

RETURN = "https://shop.example.com/o/"


@pytest.fixture
def kit():
    with running(Kit()) as kit:
        yield kit


def provider_for(
    kit: Kit, secret_key: str | None = None, http: urllib3.PoolManager | None = None
) -> StripeProvider:
    config = StripeConfig.model_validate(
        {**kit.config(), **({"secret_key": secret_key} if secret_key else {})}
    )
    return StripeProvider(config, "https://shop.example.com/webhooks/stripe", http=http)


@pytest.fixture
def shop(kit):
    return provider_for(kit)


def an_order(amount: int = 1999, currency: str = "CNY", minutes: int = 15) -> Order:
    """An order made now, reserved for `minutes`."""
    return shop_order("stripe", amount=amount, currency=currency, minutes=minutes)


def refund_of(kit: Kit, order: Order, refund_id: str | None = None) -> RefundRequest:
    return RefundRequest(
        refund_id=refund_id or f"rf_{order.order_id}",
        order_id=order.order_id,
        payment_id=kit.payment_intent_of(as_checkout(order)),
        amount=order.total,
        paid=order.total,
    )


# ---------------------------------------------------------------- checkout


def test_start_creates_a_checkout_session_for_the_exact_order(kit, shop):
    order = an_order(amount=1999)
    started = shop.start(order, RETURN + order.order_id)

    [sent] = kit.server.seen("POST", "/v1/checkout/sessions")
    form = sent.form
    assert form["mode"] == "payment"
    assert form["line_items"] == [
        {
            "price_data": {
                "currency": "cny",
                "unit_amount": "1999",
                "product_data": {"name": f"Order {order.order_id}"},
            },
            "quantity": "1",
        }
    ]
    assert form["client_reference_id"] == order.order_id
    assert form["metadata"] == {"order_id": order.order_id}
    assert form["payment_intent_data"] == {"metadata": {"order_id": order.order_id}}
    assert form["success_url"] == form["cancel_url"] == RETURN + order.order_id
    assert sent.headers["authorization"] == f"Bearer {kit.secret_key}"
    assert sent.headers["idempotency-key"] == f"checkout-{order.order_id}"
    session = kit.server.session_for(order.order_id)
    assert started.kind == "redirect" and started.url == session["url"]
    assert (session["amount_total"], session["currency"]) == (1999, "cny")


def test_a_session_outlives_a_short_reservation_by_stripes_minimum_and_never_a_day(kit, shop):
    # The fake refuses a lifetime outside 30 minutes .. 24 hours, as Stripe does.
    for minutes, lifetime in ((1, 40 * 60), (15, 40 * 60), (90, 90 * 60), (24 * 60, 24 * 3600 - 600)):
        order = an_order(minutes=minutes)
        shop.start(order, RETURN)
        expires = int(kit.server.seen("POST", "/v1/checkout/sessions")[-1].form["expires_at"])
        assert expires == int(order.created_at.timestamp()) + lifetime


def test_a_retried_checkout_gets_the_same_session(kit, shop):
    order = an_order()
    first = shop.start(order, RETURN)
    again = shop.start(order, RETURN)  # the buyer's retry of POST /api/orders, with the same key
    assert again == first
    assert len(kit.server.sessions) == 1
    assert len(kit.server.seen("POST", "/v1/checkout/sessions")) == 2


def test_isk_is_sent_in_stripes_two_decimal_units(kit, shop):
    order = an_order(amount=500, currency="ISK")
    shop.start(order, RETURN)
    assert kit.server.session_for(order.order_id)["amount_total"] == 50000


def test_the_kits_payment_callback_is_for_the_session_start_made(kit, shop):
    order = an_order()
    shop.start(order, RETURN)
    session = kit.server.session_for(order.order_id)
    callback = kit.paid(as_checkout(order))
    headers = {k.lower(): v for k, v in callback.headers.items()}
    [event] = shop.verify_callback(headers, callback.body, now=int(time.time()))
    assert json.loads(callback.body)["data"]["object"]["id"] == session["id"]
    assert (event.order_id, event.amount, event.payment_id) == (
        order.order_id,
        order.total,
        kit.payment_intent_of(as_checkout(order)),
    )
    # Built again: Stripe's retry of the same event.
    [again] = shop.verify_callback(headers, kit.paid(as_checkout(order)).body, now=int(time.time()))
    assert again == event
    assert session["payment_status"] == "paid" and session["payment_intent"] == event.payment_id


# ---------------------------------------------------------------- lost callbacks


def test_query_finds_the_orders_succeeded_payment_and_nothing_else(kit, shop):
    order, other = an_order(), an_order()
    shop.start(order, RETURN)
    assert shop.query(order.order_id) == []
    intent = kit.pay_without_callback(as_checkout(order))
    kit.pay_without_callback(as_checkout(other))
    kit.server.pay(
        "pi_abandoned1", 1999, "cny", {"order_id": order.order_id}, status="requires_payment_method"
    )
    kit.server.pay("pi_processing1", 1999, "cny", {"order_id": order.order_id}, status="processing")

    [event] = shop.query(order.order_id)
    assert event.model_dump() == {
        "provider": "stripe",
        "event_id": f"query:{intent}",
        "type": "payment.succeeded",
        "order_id": order.order_id,
        "payment_id": intent,
        "amount": {"amount": 1999, "currency": "CNY"},
        "refund_id": None,
        "dispute_id": None,
        "reason": None,
        "payer": f"stripe:{kit.buyer}",  # the card's fingerprint, from the Charge the search includes
        "card_country": "US",
    }
    assert shop.query(order.order_id) == [event]  # the same event however often it is asked (I5)
    sent = kit.server.seen("GET", "/v1/payment_intents/search")[-1]
    assert sent.query["query"] == f"metadata['order_id']:'{order.order_id}'"


def test_query_ignores_a_search_hit_whose_metadata_names_another_order(kit, shop):
    order = an_order()
    intent = kit.server.pay("pi_lookalike1", 1999, "cny", {"order_id": "ord_other"})
    answer = {"object": "search_result", "data": [intent], "has_more": False, "next_page": None}
    kit.server.garble_next(json.dumps(answer).encode())
    assert shop.query(order.order_id) == []


@pytest.mark.parametrize("order_id", ["ord_x' OR status:'succeeded", "ord_x\\", "ord_'"])
def test_query_refuses_an_order_id_that_would_change_the_search(kit, shop, order_id):
    with pytest.raises(BadInput):
        shop.query(order_id)
    assert kit.server.requests == []


# ---------------------------------------------------------------- refunds


def test_a_refund_asked_twice_is_made_once(kit, shop):
    order = an_order()
    kit.pay_without_callback(as_checkout(order))
    request = refund_of(kit, order)
    assert shop.refund(request) == RefundState.SUCCEEDED
    assert shop.refund(request) == RefundState.SUCCEEDED
    [made] = kit.server.refunds.values()
    assert (made["amount"], made["payment_intent"]) == (1999, request.payment_id)
    assert made["metadata"] == {"order_id": order.order_id, "refund_id": request.refund_id}
    sent = kit.server.seen("POST", "/v1/refunds")
    assert [r.headers["idempotency-key"] for r in sent] == [request.refund_id] * 2


def test_refund_state_is_none_before_and_the_refunds_state_after(kit, shop):
    order = an_order()
    kit.pay_without_callback(as_checkout(order))
    request = refund_of(kit, order)
    kit.server.refunds["re_dashboard1"] = {  # another refund of the same payment, not ours
        "id": "re_dashboard1",
        "object": "refund",
        "amount": 1,
        "currency": "cny",
        "created": 1,
        "metadata": {},
        "payment_intent": request.payment_id,
        "status": "failed",
    }
    assert shop.refund_state(request) is None
    kit.server.refund_status = "pending"
    assert shop.refund(request) == RefundState.PENDING
    assert shop.refund_state(request) == RefundState.PENDING
    kit.server.set_refund_status(request.refund_id, "succeeded")
    assert shop.refund_state(request) == RefundState.SUCCEEDED
    kit.server.set_refund_status(request.refund_id, "failed")
    assert shop.refund_state(request) == RefundState.FAILED


def test_stripe_refusing_a_refund_of_more_than_is_left_is_a_refusal(kit, shop):
    order = an_order()
    kit.pay_without_callback(as_checkout(order))
    kit.refunded(as_checkout(order))  # the merchant refunded it all from the dashboard
    with pytest.raises(ProviderRefused):
        shop.refund(refund_of(kit, order))


# ---------------------------------------------------------------- failures


def test_a_503_then_an_answer_is_retried_into_success(kit, shop):
    order = an_order()
    kit.server.fail_next(1, status=503)
    assert shop.start(order, RETURN).url == kit.server.session_for(order.order_id)["url"]
    sent = kit.server.seen("POST", "/v1/checkout/sessions")
    assert len(sent) == 2 and {r.headers["idempotency-key"] for r in sent} == {f"checkout-{order.order_id}"}


def test_stripe_down_through_every_retry_is_unavailable(kit, shop):
    kit.server.fail_next(3, status=503)
    with pytest.raises(ProviderUnavailable):
        shop.query(an_order().order_id)


def test_a_hang_beyond_the_read_timeout_is_unavailable(kit):
    shop = provider_for(kit, http=new_pool(timeout=urllib3.Timeout(connect=0.5, read=0.5)))
    kit.server.hang_next(3, seconds=10)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        shop.query(an_order().order_id)
    assert time.monotonic() - started < 5  # the timeouts, not the fake's hang, ended it


def test_a_wrong_secret_key_is_refused_and_never_shown(kit):
    wrong = "sk_test_" + "7" * 40
    with pytest.raises(ProviderRefused) as refused:
        provider_for(kit, secret_key=wrong).start(an_order(), RETURN)
    assert wrong not in str(refused.value) and kit.secret_key not in str(refused.value)
    assert kit.server.sessions == {}


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html>upstream error</html>",
        b'{"object": "checkout.session"}',
        b'{"id": "cs_test_1", "object": "checkout.session", "payment_status": "unpaid", "amount_total": "1999"}',
        json.dumps({"error": "not a session"}).encode(),
    ],
)
def test_an_answer_that_is_not_what_stripe_promises_is_unexpected(kit, shop, garbage):
    kit.server.garble_next(garbage)
    with pytest.raises(UnexpectedAnswer):
        shop.start(an_order(), RETURN)


@pytest.mark.parametrize(
    "change",
    [{"amount_total": 1}, {"currency": "usd"}, {"client_reference_id": "ord_someone_else"}, {"url": None}],
)
def test_a_session_for_another_order_or_amount_or_without_a_page_is_unexpected(kit, shop, change):
    order = an_order(amount=1999)
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "client_reference_id": order.order_id,
        "amount_total": 1999,
        "currency": "cny",
        "payment_status": "unpaid",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1",
    }
    kit.server.garble_next(json.dumps(session).encode())
    assert shop.start(order, RETURN).url == session["url"]  # as it is, the answer is taken
    kit.server.garble_next(json.dumps({**session, **change}).encode())
    with pytest.raises(UnexpectedAnswer):
        shop.start(order, RETURN)


def test_a_refund_answer_about_another_refund_is_unexpected(kit, shop):
    order = an_order()
    kit.pay_without_callback(as_checkout(order))
    request = refund_of(kit, order)
    other = {
        "id": "re_1",
        "object": "refund",
        "amount": 1999,
        "currency": "cny",
        "payment_intent": request.payment_id,
        "metadata": {"refund_id": "rf_someone_else"},
        "status": "succeeded",
    }
    kit.server.garble_next(json.dumps(other).encode())
    with pytest.raises(UnexpectedAnswer):
        shop.refund(request)


# ---------------------------------------------------------------- the Stripe SDK against the fake


def sdk(kit: Kit, key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        key or kit.secret_key, base_addresses={"api": kit.server.url}, max_network_retries=0
    )


def test_the_stripe_sdk_creates_a_checkout_session_and_a_refund_at_the_fake(kit):
    client = sdk(kit)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 1500, "product_data": {"name": "Card"}},
                    "quantity": 2,
                }
            ],
            "client_reference_id": "ord_sdk",
            "metadata": {"order_id": "ord_sdk"},
            "success_url": "https://shop.example.com/done",
            "expires_at": int(time.time()) + 3600,
        },
        options={"idempotency_key": "checkout-ord_sdk"},
    )
    assert isinstance(session, stripe.checkout.Session)
    assert (session.amount_total, session.currency, session.metadata["order_id"]) == (3000, "usd", "ord_sdk")
    assert session.url.startswith(kit.server.url)
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id

    intent = kit.server.pay("pi_sdk1", 3000, "usd", {"order_id": "ord_sdk"}, session_id=session.id)
    refund = client.v1.refunds.create(
        params={"payment_intent": intent["id"], "amount": 1000, "metadata": {"refund_id": "rf_sdk"}}
    )
    assert isinstance(refund, stripe.Refund)
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 1000, "pi_sdk1")
    listed = client.v1.refunds.list(params={"payment_intent": "pi_sdk1"})
    assert [r.id for r in listed.data] == [refund.id]
    found = client.v1.payment_intents.search(params={"query": "metadata['order_id']:'ord_sdk'"})
    assert [i.id for i in found.data] == ["pi_sdk1"]


def test_the_stripe_sdk_reads_the_fakes_errors_as_stripes(kit):
    with pytest.raises(stripe.AuthenticationError):
        sdk(kit, key="sk_test_" + "0" * 40).v1.checkout.sessions.retrieve("cs_test_1")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk(kit).v1.refunds.create(params={"payment_intent": "pi_nobody"})
    assert missing.value.code == "resource_missing"
