"""The shop's outbound WeChat Pay API v3 calls (Native order, query, refund, refund query) against the
fake WeChat Pay on 127.0.0.1: what reaches WeChat Pay is exactly the order's amount, signed so
WeChat Pay accepts it; an answer counts only when WeChat Pay's signature verifies; retries and
timeouts end as ProviderUnavailable, a refused signature as ProviderRefused."""

import json
import secrets
import time
from datetime import UTC, datetime

import pytest
import urllib3
from wechatpayv3 import WeChatPayType
from wechatpayv3.utils import rsa_verify

from shared.errors import PaymentMismatch
from shared.money import Money
from shared.orders import Order
from shared.providers import (
    ProviderRefused,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    UnexpectedAnswer,
)
from shared.providers.config import WechatPayConfig
from shared.providers.http import new_pool
from shared.providers.wechatpay import WechatPayProvider
from tests.providers import as_checkout, running, shop_order
from tests.providers.keys import private_pem, public_pem
from tests.providers.wechatpay import Kit

NOTIFY_URL = "https://shop.example/webhooks/wechatpay"
CREATED = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def kit():
    with running(Kit()) as kit:
        yield kit


@pytest.fixture(autouse=True)
def fresh_scripts(kit):
    yield
    assert kit.fake is not None
    kit.fake.reset_scripts()
    kit.fake.refund_outcome = "SUCCESS"


def client(kit: Kit, http: urllib3.PoolManager | None = None, **changes) -> WechatPayProvider:
    return WechatPayProvider(
        WechatPayConfig(**{**kit.config(), **changes}), NOTIFY_URL, http=http or new_pool()
    )


@pytest.fixture(scope="module")
def provider(kit) -> WechatPayProvider:
    return client(kit)


def new_order(amount: int = 1999) -> Order:
    return shop_order("wechatpay", amount=amount, created=CREATED)


def paid_order(kit: Kit, provider: WechatPayProvider, amount: int = 1999) -> tuple[Order, str]:
    """An order started at WeChat Pay and paid there; its transaction_id."""
    order = new_order(amount)
    provider.start(order, "https://shop.example/return")
    return order, kit.pay_without_notify(as_checkout(order))


def refund_of(order: Order, transaction_id: str, amount: int | None = None) -> RefundRequest:
    return RefundRequest(
        refund_id=f"rf_{order.order_id}",
        order_id=order.order_id,
        payment_id=transaction_id,
        amount=Money(amount=order.total.amount if amount is None else amount, currency="CNY"),
        paid=order.total,
        reason="order refunded",
    )


# ---------------------------------------------------------------- Native order


def test_start_creates_a_native_order_for_exactly_the_order_total(kit, provider):
    order = new_order(amount=1999)

    started = provider.start(order, "https://shop.example/return")

    assert started.kind == "qr" and started.url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert started.url == kit.fake.trades[order.order_id]["code_url"]
    (asked,) = kit.fake.asked("POST", "/v3/pay/transactions/native")[-1:]
    assert asked.status == 200 and asked.headers["accept"] == "application/json"
    sent = asked.json
    assert sent["amount"] == {"total": 1999, "currency": "CNY"}
    assert (sent["appid"], sent["mchid"], sent["out_trade_no"]) == (kit.appid, kit.mchid, order.order_id)
    assert sent["notify_url"] == NOTIFY_URL
    assert sent["time_expire"] == "2026-11-22T12:15:00+08:00"  # the reservation's end, in Beijing time
    assert order.order_id in sent["description"]


def test_the_shops_request_signature_verifies_with_the_sdk(kit, provider):
    provider.start(new_order(), "https://shop.example/return")
    asked = kit.fake.asked("POST", "/v3/pay/transactions/native")[-1]
    scheme, _, fields = asked.headers["authorization"].partition(" ")
    parts = dict(item.split("=", 1) for item in fields.split(","))
    parts = {name: value.strip('"') for name, value in parts.items()}

    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert (parts["mchid"], parts["serial_no"]) == (kit.mchid, kit.merchant_serial)
    # rsa_verify checks "a\nb\nc\n"; WeChat Pay's request message is "METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n",
    # so the first three lines go in as the SDK's first argument.
    head = f"POST\n{asked.target}\n{parts['timestamp']}"
    public = kit.merchant_key.public_key()
    assert rsa_verify(head, parts["nonce_str"], asked.body.decode(), parts["signature"], public)
    assert not rsa_verify(head, parts["nonce_str"], asked.body.decode() + " ", parts["signature"], public)


def test_the_sdk_as_a_client_accepts_the_fakes_signed_answers(kit):
    # The SDK has no setting for its API host: Core._gate_way (private) points it at the fake.
    sdk = kit.sdk(NOTIFY_URL, timeout=(2, 5))
    sdk._core._gate_way = kit.fake.url
    order = new_order()

    code, message = sdk.pay(
        description="Order",
        out_trade_no=order.order_id,
        amount={"total": 1999, "currency": "CNY"},
        time_expire="2026-11-22T12:15:00+08:00",
        pay_type=WeChatPayType.NATIVE,
    )  # the SDK raises if the answer's signature does not verify

    assert code == 200 and json.loads(message)["code_url"] == kit.fake.trades[order.order_id]["code_url"]
    code, message = sdk.query_refund(out_refund_no=f"rf_{order.order_id}")
    assert code == 404 and json.loads(message)["code"] == "RESOURCE_NOT_EXISTS"


# ---------------------------------------------------------------- query


def test_query_ignores_unknown_and_unpaid_orders(kit, provider):
    assert provider.query(f"ord_{secrets.token_hex(10)}") == []  # 404 ORDER_NOT_EXIST
    unpaid = new_order()
    provider.start(unpaid, "https://shop.example/return")
    assert provider.query(unpaid.order_id) == []  # NOTPAY


def test_query_finds_a_payment_whose_notify_was_lost(kit, provider):
    order, transaction_id = paid_order(kit, provider, amount=2500)

    (found,) = provider.query(order.order_id)

    assert found.type == "payment.succeeded" and found.provider == "wechatpay"
    assert (found.order_id, found.payment_id) == (order.order_id, transaction_id)
    assert found.amount == Money(amount=2500, currency="CNY")
    assert found.event_id == f"query:{transaction_id}"
    assert provider.query(order.order_id) == [found]  # asked again: the same event (I5)
    notify = kit.paid(as_checkout(order))  # the notify, had it arrived, names the same payment
    headers = {name.lower(): value for name, value in notify.headers.items()}
    (notified,) = provider.verify_callback(headers, notify.body, now=int(time.time()))
    assert notified.payment_id == found.payment_id and notified.amount == found.amount


def test_an_order_id_is_path_escaped_and_asked_about_exactly(kit, provider):
    odd = "ord_x/ä &mchid=1900000001#y"
    assert provider.query(odd) == []
    asked = kit.fake.asked("GET", "/v3/pay/transactions/out-trade-no/")[-1]
    assert asked.status == 404  # signed as sent: the fake verified it, then did not find it
    assert asked.path == f"/v3/pay/transactions/out-trade-no/{odd}"
    assert asked.query == {"mchid": [kit.mchid]}


def test_an_answer_about_another_order_is_refused(kit, provider):
    order, _ = paid_order(kit, provider)
    kit.fake.rewrite_next(lambda answer: {**answer, "out_trade_no": "ord_someone_else"})
    with pytest.raises(PaymentMismatch):
        provider.query(order.order_id)


def test_an_answer_about_another_merchant_is_refused(kit, provider):
    order, _ = paid_order(kit, provider)
    kit.fake.rewrite_next(lambda answer: {**answer, "mchid": "1900000001"})
    with pytest.raises(UnexpectedAnswer):
        provider.query(order.order_id)


# ---------------------------------------------------------------- refunds


def test_a_refund_asked_twice_is_one_refund_of_that_payment(kit, provider):
    order, transaction_id = paid_order(kit, provider)
    request = refund_of(order, transaction_id)

    assert provider.refund(request) == RefundState.SUCCEEDED
    assert provider.refund(request) == RefundState.SUCCEEDED

    refunds = [r for r in kit.fake.refunds.values() if r["transaction_id"] == transaction_id]
    assert len(refunds) == 1 and refunds[0]["amount"]["refund"] == 1999
    sent = kit.fake.asked("POST", "/v3/refund/domestic/refunds")[-1].json
    assert sent["transaction_id"] == transaction_id and "out_trade_no" not in sent  # that exact payment
    assert sent["out_refund_no"] == request.refund_id and sent["notify_url"] == NOTIFY_URL
    assert sent["amount"] == {"refund": 1999, "total": 1999, "currency": "CNY"}


def test_a_partial_refund_names_the_part_and_the_whole(kit, provider):
    order, transaction_id = paid_order(kit, provider, amount=1999)
    assert provider.refund(refund_of(order, transaction_id, amount=500)) == RefundState.SUCCEEDED
    sent = kit.fake.asked("POST", "/v3/refund/domestic/refunds")[-1].json
    assert sent["amount"] == {"refund": 500, "total": 1999, "currency": "CNY"}


def test_refund_state_is_none_until_asked_then_what_wechat_pay_says(kit, provider):
    order, transaction_id = paid_order(kit, provider)
    request = refund_of(order, transaction_id)
    assert provider.refund_state(request) is None  # 404 RESOURCE_NOT_EXISTS

    kit.fake.refund_outcome = "PROCESSING"
    assert provider.refund(request) == RefundState.PENDING
    assert provider.refund_state(request) == RefundState.PENDING
    kit.fake.settle_refund(request.refund_id, "SUCCESS")
    assert provider.refund_state(request) == RefundState.SUCCEEDED


@pytest.mark.parametrize("status", ["ABNORMAL", "CLOSED"])
def test_a_refund_that_did_not_reach_the_buyer_failed(kit, provider, status):
    order, transaction_id = paid_order(kit, provider)
    request = refund_of(order, transaction_id)
    kit.fake.refund_outcome = "PROCESSING"
    provider.refund(request)
    kit.fake.settle_refund(request.refund_id, status)
    assert provider.refund_state(request) == RefundState.FAILED


def test_an_answer_about_another_refund_is_refused(kit, provider):
    order, transaction_id = paid_order(kit, provider)
    kit.fake.rewrite_next(lambda answer: {**answer, "out_refund_no": "rf_someone_else"})
    with pytest.raises(UnexpectedAnswer):
        provider.refund(refund_of(order, transaction_id))


def test_the_refund_notify_after_the_shops_refund_names_the_shops_refund(kit, provider):
    order, transaction_id = paid_order(kit, provider)
    request = refund_of(order, transaction_id)
    kit.fake.refund_outcome = "PROCESSING"
    provider.refund(request)

    notify = kit.refunded(as_checkout(order))
    headers = {name.lower(): value for name, value in notify.headers.items()}
    (event,) = provider.verify_callback(headers, notify.body, now=int(time.time()))

    assert event.type == "refund.succeeded" and event.refund_id == request.refund_id
    assert event.payment_id == transaction_id and event.amount == order.total
    assert provider.refund_state(request) == RefundState.SUCCEEDED


# ---------------------------------------------------------------- failures


def test_a_503_is_retried_into_success(kit, provider):
    order = new_order()
    kit.fake.fail_next(1, status=503)

    assert provider.start(order, "https://shop.example/return").kind == "qr"
    asked = [
        r
        for r in kit.fake.asked("POST", "/v3/pay/transactions/native")
        if r.json["out_trade_no"] == order.order_id
    ]
    assert [r.status for r in asked] == [503, 200]


def test_a_503_that_lasts_is_provider_unavailable(kit, provider):
    kit.fake.fail_next(10, status=503)
    with pytest.raises(ProviderUnavailable):
        provider.query(f"ord_{secrets.token_hex(10)}")


def test_a_hanging_wechat_pay_is_provider_unavailable_without_waiting_for_it(kit):
    impatient = client(kit, http=new_pool(timeout=urllib3.Timeout(connect=0.5, read=0.5)))
    kit.fake.hang_next(10, seconds=30)
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        impatient.query(f"ord_{secrets.token_hex(10)}")
    assert time.monotonic() - began < 10  # a few read timeouts and retries, not the 30 s hang


def test_an_answer_with_a_bad_signature_is_not_trusted(kit, provider):
    order, _ = paid_order(kit, provider)
    kit.fake.bad_signature_next(1)
    with pytest.raises(UnexpectedAnswer):
        provider.query(order.order_id)
    assert provider.query(order.order_id)  # the same answer, correctly signed, is


def test_a_not_found_answer_counts_only_when_signed(kit, provider):
    kit.fake.bad_signature_next(1)
    with pytest.raises(UnexpectedAnswer):
        provider.query(f"ord_{secrets.token_hex(10)}")  # a forged "no such order" is not "unpaid"


@pytest.mark.parametrize("ask", ["query", "refund_state"])
def test_a_404_without_its_documented_code_is_not_taken_for_never_heard_of(kit, provider, ask):
    order, transaction_id = paid_order(kit, provider)
    kit.fake.fail_next(1, status=404)  # a signed 404 with code SYSTEM_ERROR
    with pytest.raises(ProviderRefused):
        if ask == "query":
            provider.query(order.order_id)
        else:
            provider.refund_state(refund_of(order, transaction_id))


def test_answers_are_verified_with_the_configured_wechat_pay_key(kit):
    order = new_order()
    fooled = client(kit, platform_public_keys={kit.platform_serial: public_pem(kit.imposter_key)})
    with pytest.raises(UnexpectedAnswer):
        fooled.start(order, "https://shop.example/return")
    other_serial = client(
        kit, platform_public_keys={"PUB_KEY_ID_0000000000000000": public_pem(kit.platform_key)}
    )
    with pytest.raises(UnexpectedAnswer):
        other_serial.query(order.order_id)


def test_a_request_signed_with_a_wrong_merchant_key_is_refused(kit):
    wrong = client(kit, merchant_private_key=private_pem(kit.imposter_key))
    with pytest.raises(ProviderRefused):
        wrong.query(f"ord_{secrets.token_hex(10)}")
    refused = kit.fake.requests[-1]
    assert refused.status == 401  # SIGN_ERROR, not retried
