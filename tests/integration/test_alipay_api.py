"""miaofa's calls to Alipay against the fake gateway (tests/providers/alipay.py), no runtime: the
signed page-pay redirect and precreate, trade query (lost notifies), refunds and their state, and
what the shop does when the gateway fails, hangs, or answers something it cannot trust. The SDK
python-alipay-sdk is pointed at the same fake, to show the fake speaks the format the SDK expects."""

import json
import secrets
from urllib.parse import parse_qsl, urlsplit

import pytest
import urllib3
from alipay import AliPay
from alipay.exceptions import AliPayValidationError

from shared.errors import PaymentMismatch
from shared.money import Money
from shared.providers import (
    ProviderRefused,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    UnexpectedAnswer,
)
from shared.providers.alipay import AlipayProvider
from shared.providers.config import AlipayConfig
from shared.providers.http import new_pool
from tests.providers import running, shop_order
from tests.providers.alipay import APP_ID, Kit
from tests.providers.keys import private_pem, public_pem, rsa_sign

NOTIFY_URL = "https://shop.example/webhooks/alipay"
SHORT = urllib3.Timeout(connect=0.5, read=0.5)


@pytest.fixture(scope="module")
def kit():
    with running(Kit()) as kit:
        yield kit


@pytest.fixture(autouse=True)
def fake(kit):
    kit.gateway.reset()
    yield kit.gateway
    kit.gateway.reset()


def provider_for(kit, timeout: urllib3.Timeout | None = None, **config) -> AlipayProvider:
    """The provider against the fake gateway, with the shop's own timeouts unless given (short ones only
    where a hang is the point: on a loaded machine a 0.5 s read can time out an honest answer)."""
    http = new_pool(timeout=timeout) if timeout is not None else new_pool()
    return AlipayProvider(AlipayConfig(**{**kit.config(), **config}), NOTIFY_URL, http=http)


@pytest.fixture(scope="module")
def provider(kit) -> AlipayProvider:
    return provider_for(kit)


def new_order_id() -> str:
    return f"ord_{secrets.token_hex(10)}"


def refund_of(order_id: str, trade_no: str, fen: int = 1999) -> RefundRequest:
    money = Money(amount=fen, currency="CNY")
    return RefundRequest(
        refund_id=f"rf_{order_id}",
        order_id=order_id,
        payment_id=trade_no,
        amount=money,
        paid=money,
        reason="不要了",
    )


# ---------------------------------------------------------------- starting a payment


def test_the_page_pay_redirect_carries_the_exact_amount_and_the_gateway_accepts_its_sign(kit, fake, provider):
    order = shop_order("alipay", amount=1999)
    start = provider.start(order, return_url="https://shop.example/o/x")
    assert start.kind == "redirect" and start.url.startswith(fake.url + "?")

    arrived = urllib3.PoolManager().request("GET", start.url)  # the buyer's browser
    assert arrived.status == 200 and "收银台" in arrived.data.decode()
    [request] = fake.calls("alipay.trade.page.pay")
    assert request.signed and request.biz["total_amount"] == "19.99"
    assert fake.trades[order.order_id].amount == 1999
    assert provider.query(order.order_id) == []  # at the cashier, not paid yet


def test_precreate_returns_the_qr_to_show(kit, fake):
    provider = provider_for(kit, checkout="qr")
    order = shop_order("alipay", amount=1)
    start = provider.start(order, return_url="https://shop.example/o/x")
    assert start.kind == "qr" and start.url.startswith("https://qr.alipay.com/")
    [request] = fake.calls("alipay.trade.precreate")
    assert request.signed and request.params["notify_url"] == NOTIFY_URL
    assert (request.biz["out_trade_no"], request.biz["total_amount"]) == (order.order_id, "0.01")
    assert provider.start(order, return_url="https://shop.example/o/x") == start  # same trade, same QR
    assert provider.query(order.order_id) == []


def test_a_precreate_answer_without_this_orders_qr_is_refused(kit, fake):
    provider = provider_for(kit, checkout="qr")
    fake.rewrite_next(lambda answer: {**answer, "out_trade_no": "ord_someone_else"})
    with pytest.raises(UnexpectedAnswer):
        provider.start(shop_order("alipay"), return_url="https://x/o")


# ---------------------------------------------------------------- query: lost notifies


def test_a_query_finds_a_paid_trade_whose_notify_was_lost(fake, provider):
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    [event] = provider.query(order_id)
    assert (event.type, event.order_id, event.payment_id) == ("payment.succeeded", order_id, trade.trade_no)
    assert event.amount == Money(amount=1999, currency="CNY") and event.event_id == f"query:{trade.trade_no}"
    assert provider.query(order_id) == [event]  # the same event however often it is asked
    [request, _] = fake.calls("alipay.trade.query")
    assert request.signed and request.http_method == "POST" and request.biz == {"out_trade_no": order_id}


def test_a_query_about_an_unknown_trade_finds_nothing(provider):
    assert provider.query(new_order_id()) == []


def test_a_query_answer_about_another_order_is_refused(fake, provider):
    order_id = new_order_id()
    fake.mark_paid(order_id, 1999)
    fake.rewrite_next(lambda answer: {**answer, "out_trade_no": "ord_someone_else"})
    with pytest.raises(PaymentMismatch):
        provider.query(order_id)


@pytest.mark.parametrize(
    "edit",
    [
        {"total_amount": "19.999"},
        {"total_amount": 19.99},
        {"trans_currency": "USD"},
        {"trade_no": None},
        {"trade_status": ["TRADE_SUCCESS"]},
    ],
    ids=["inexact_amount", "float_amount", "other_currency", "no_trade_no", "wrong_type"],
)
def test_a_signed_query_answer_that_breaks_alipays_format_is_refused(fake, provider, edit):
    order_id = new_order_id()
    fake.mark_paid(order_id, 1999)
    fake.rewrite_next(lambda answer: {k: v for k, v in {**answer, **edit}.items() if v is not None})
    with pytest.raises(UnexpectedAnswer):
        provider.query(order_id)


# ---------------------------------------------------------------- refunds


def test_a_refund_asked_twice_refunds_once(fake, provider):
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    request = refund_of(order_id, trade.trade_no)

    assert provider.refund_state(request) is None  # never heard of it
    assert provider.refund(request) == RefundState.SUCCEEDED
    assert provider.refund(request) == RefundState.PENDING  # fund_change N: nothing moved this time
    assert provider.refund_state(request) == RefundState.SUCCEEDED
    assert fake.trades[order_id].refunds == {request.refund_id: 1999}
    [sent, _] = fake.calls("alipay.trade.refund")
    assert (
        sent.signed
        and sent.biz["refund_amount"] == "19.99"
        and sent.biz["out_request_no"] == request.refund_id
    )
    assert (sent.biz["out_trade_no"], sent.biz["trade_no"]) == (order_id, trade.trade_no)
    assert sent.biz["refund_reason"] == "不要了"


def test_a_refund_alipay_refuses_is_refused_not_retried(fake, provider):
    unknown = new_order_id()
    with pytest.raises(ProviderRefused):
        provider.refund(refund_of(unknown, "2024000000000000000000000000"))
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    with pytest.raises(ProviderRefused):
        provider.refund(refund_of(order_id, trade.trade_no, fen=2000))  # more than was paid
    assert fake.trades[order_id].refunds == {}
    assert len(fake.calls("alipay.trade.refund")) == 2


def test_the_state_of_a_refund_for_an_unknown_trade_is_none(provider):
    assert provider.refund_state(refund_of(new_order_id(), "2024000000000000000000000001")) is None


def test_a_refund_state_answer_about_another_refund_is_refused(fake, provider):
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    request = refund_of(order_id, trade.trade_no)
    provider.refund(request)
    fake.rewrite_next(lambda answer: {**answer, "out_request_no": "rf_another"})
    with pytest.raises(UnexpectedAnswer):
        provider.refund_state(request)


# ---------------------------------------------------------------- a gateway that fails


def test_a_503_is_retried_into_success(fake, provider):
    order_id = new_order_id()
    fake.mark_paid(order_id, 1999)
    fake.fail_next(1, status=503)
    assert len(provider.query(order_id)) == 1
    assert len(fake.calls("alipay.trade.query")) == 2


def test_a_gateway_still_failing_after_the_retries_is_unavailable(fake, provider):
    fake.fail_next(3, status=503)
    with pytest.raises(ProviderUnavailable):
        provider.query(new_order_id())


def test_a_gateway_that_hangs_is_unavailable(fake, kit):
    fake.hang_next(3, seconds=5)
    with pytest.raises(ProviderUnavailable):
        provider_for(kit, timeout=SHORT).query(new_order_id())


@pytest.mark.parametrize("sub_code", ["ACQ.SYSTEM_ERROR", None])
def test_alipays_own_system_error_is_unavailable(fake, provider, sub_code):
    fake.rewrite_next(
        lambda answer: {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": sub_code or ""}
    )
    with pytest.raises(ProviderUnavailable):
        provider.query(new_order_id())


def test_a_badly_signed_answer_is_never_trusted(fake, provider):
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    fake.bad_signature_next()
    with pytest.raises(UnexpectedAnswer):
        provider.query(order_id)
    fake.bad_signature_next()
    with pytest.raises(UnexpectedAnswer):
        provider.refund(refund_of(order_id, trade.trade_no))


def forged(response: dict, key=None, name: str = "alipay_trade_query_response") -> bytes:
    text = json.dumps(response)
    signature = rsa_sign(key, text.encode()) if key is not None else ""
    return json.dumps({name: response, "sign": signature} if key is not None else {name: response}).encode()


def test_an_unsigned_or_foreign_signed_success_is_never_trusted(kit, fake, provider):
    order_id = new_order_id()
    paid = {"code": "10000", "msg": "Success", "out_trade_no": order_id, "trade_no": "2024" + "1" * 24}
    paid |= {"trade_status": "TRADE_SUCCESS", "total_amount": "19.99"}
    for body in (forged(paid), forged(paid, key=kit.app_key)):
        fake.garble_next(body)
        with pytest.raises(UnexpectedAnswer):
            provider.query(order_id)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"\xff\xfe{}",
        b"[]",
        b'{"sign": "abc"}',
        b'{"alipay_trade_query_response": {"code": "10000"}, "alipay_trade_query_response": {}, "sign": "x"}',
        b'{"alipay_trade_query_response": "10000", "sign": "x"}',
        b"",
    ],
    ids=["html", "not_utf8", "array", "no_response", "repeated", "not_an_object", "empty"],
)
def test_a_garbage_answer_is_unexpected(fake, provider, body):
    fake.garble_next(body)
    with pytest.raises(UnexpectedAnswer):
        provider.query(new_order_id())


def test_a_request_signed_with_another_app_key_is_refused_by_the_gateway(kit, fake):
    stranger = provider_for(kit, app_private_key=private_pem(kit.alipay_key))
    with pytest.raises(ProviderRefused):
        stranger.query(new_order_id())
    [request] = fake.calls("alipay.trade.query")
    assert not request.signed


def test_a_request_from_another_app_is_refused_by_the_gateway(kit, fake):
    with pytest.raises(ProviderRefused):
        provider_for(kit, app_id="2021000000000999").query(new_order_id())


# ---------------------------------------------------------------- python-alipay-sdk against the fake


def sdk(kit, alipay_public_key: str | None = None) -> AliPay:
    client = AliPay(
        appid=APP_ID,
        app_private_key_string=private_pem(kit.app_key),
        alipay_public_key_string=alipay_public_key or public_pem(kit.alipay_key),
    )
    client._gateway = kit.gateway.url  # private: the SDK only knows Alipay's production and sandbox URLs
    return client


def test_the_sdks_own_calls_are_accepted_and_its_verification_passes(kit, fake):
    client, order_id = sdk(kit), new_order_id()
    created = client.api_alipay_trade_precreate(subject="测试", out_trade_no=order_id, total_amount="19.99")
    assert created["code"] == "10000" and created["qr_code"].startswith("https://qr.alipay.com/")
    assert client.api_alipay_trade_query(out_trade_no=order_id)["trade_status"] == "WAIT_BUYER_PAY"
    fake.mark_paid(order_id, 1999)
    assert client.api_alipay_trade_query(out_trade_no=order_id)["trade_status"] == "TRADE_SUCCESS"
    refunded = client.api_alipay_trade_refund(
        refund_amount="19.99", out_trade_no=order_id, out_request_no="rf_1"
    )
    assert refunded["fund_change"] == "Y" and refunded["refund_fee"] == "19.99"
    state = client.api_alipay_trade_fastpay_refund_query("rf_1", out_trade_no=order_id)
    assert state["refund_status"] == "REFUND_SUCCESS"
    assert all(request.signed and request.http_method == "GET" for request in fake.requests)
    assert len(fake.requests) == 5


def test_the_sdk_refuses_what_the_fake_signs_badly_or_with_another_key(kit, fake):
    with pytest.raises(AliPayValidationError):
        sdk(kit, alipay_public_key=public_pem(kit.app_key)).api_alipay_trade_query(
            out_trade_no=new_order_id()
        )
    fake.bad_signature_next()
    with pytest.raises(AliPayValidationError):
        sdk(kit).api_alipay_trade_query(out_trade_no=new_order_id())


def test_a_refund_the_sdk_made_is_seen_by_miaofa(kit, fake, provider):
    """Another client (the merchant's own tool) refunded through the same out_request_no: miaofa sees it
    and does not refund again."""
    order_id = new_order_id()
    trade = fake.mark_paid(order_id, 1999)
    request = refund_of(order_id, trade.trade_no)
    sdk(kit).api_alipay_trade_refund(
        refund_amount="19.99", out_trade_no=order_id, out_request_no=request.refund_id
    )
    assert provider.refund_state(request) == RefundState.SUCCEEDED
    assert provider.refund(request) == RefundState.PENDING and fake.trades[order_id].refunds == {
        request.refund_id: 1999
    }


def test_the_page_pay_url_verifies_at_the_gateway_parameter_by_parameter(kit, fake, provider):
    order = shop_order("alipay")
    params = dict(parse_qsl(urlsplit(provider.start(order, return_url="https://x/o").url).query))
    tampered = {**params, "biz_content": params["biz_content"].replace("19.99", "0.01")}
    urllib3.PoolManager().request("POST", fake.url, fields=tampered, encode_multipart=False)
    [request] = fake.calls("alipay.trade.page.pay")
    assert not request.signed and order.order_id not in fake.trades
