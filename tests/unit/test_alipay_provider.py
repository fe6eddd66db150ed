"""Alipay without a server: the notify's RSA2 sign, its time window and binding to this app and
seller, what each trade status means, exact yuan amounts, hostile bodies, the signed page-pay
redirect; and python-alipay-sdk as an independent peer (it signs what miaofa verifies, and verifies
what miaofa and the kit sign)."""

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from alipay import AliPay
from pydantic import ValidationError

from shared.errors import BadInput, InvalidSignature
from shared.money import Money
from shared.orders import Order
from shared.providers.alipay import NOTIFY_MAX_AGE, AlipayProvider, response_members
from shared.providers.config import AlipayConfig
from tests.providers import Callback, shop_order
from tests.providers.alipay import APP_ID, Kit, trade_number
from tests.providers.keys import private_pem, public_pem

ORDER_ID = "ord_01hx7c9k2m4n6p8q0r2s"
NOTIFY_URL = "https://shop.example/webhooks/alipay"
BEIJING = timezone(timedelta(hours=8))
CREATED = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # the order expires at 04:15 UTC, 12:15 in Beijing


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit()  # two RSA-2048 key pairs, once for the module; its fake gateway is never started here


@pytest.fixture(scope="module")
def provider(kit) -> AlipayProvider:
    return AlipayProvider(AlipayConfig(**kit.config()), NOTIFY_URL)


def notify(kit, status: str = "TRADE_SUCCESS", total: str = "19.99", **changes: str | None) -> dict[str, str]:
    """The kit's notify for ORDER_ID with some parameters changed (None: removed), unsigned."""
    params = kit.trade_notify(ORDER_ID, status, total)
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def verify(provider, callback: Callback, now: int | None = None):
    headers = {key.lower(): value for key, value in callback.headers.items()}
    return provider.verify_callback(headers, callback.body, now=int(time.time()) if now is None else now)


def form(callback: Callback) -> dict[str, str]:
    return dict(parse_qsl(callback.body.decode()))


def unpaid(amount: int = 1999, currency: str = "CNY") -> Order:
    """ORDER_ID, unpaid, as the shop hands it to `start`."""
    return shop_order("alipay", ORDER_ID, amount=amount, currency=currency, created=CREATED)


# ---------------------------------------------------------------- the sign


def test_a_paid_notify_is_a_succeeded_payment_of_the_exact_amount(kit, provider):
    params = notify(kit)
    [event] = verify(provider, kit.callback(params))
    assert event.type == "payment.succeeded" and event.provider == "alipay"
    assert (event.order_id, event.payment_id) == (ORDER_ID, trade_number(ORDER_ID))
    assert event.amount == Money(amount=1999, currency="CNY")
    assert event.event_id == params["notify_id"] and event.refund_id is None


def test_the_same_notify_sent_again_is_the_same_event(kit, provider):
    first, again = verify(provider, kit.paid(_checkout())), verify(provider, kit.paid(_checkout()))
    assert first == again


@pytest.mark.parametrize(
    "change",
    [
        {"total_amount": "0.01"},
        {"out_trade_no": "ord_someone_else"},
        {"trade_status": "TRADE_FINISHED"},
        {"refund_fee": "19.99"},  # a parameter added after signing
        {"notify_time": None},  # one removed
    ],
    ids=["amount", "order", "status", "added", "removed"],
)
def test_a_notify_changed_after_signing_is_refused(kit, provider, change):
    params = form(kit.callback(notify(kit)))
    params.update(change)
    body = urlencode({key: value for key, value in params.items() if value is not None}).encode()
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(body))


def test_an_empty_parameter_added_after_signing_changes_nothing(kit, provider):
    """Empty values are not signed, so they are ignored: an empty `gmt_refund` does not make a refund."""
    params = form(kit.callback(notify(kit)))
    [event] = verify(
        provider, Callback(urlencode({**params, "gmt_refund": "", "trans_currency": ""}).encode())
    )
    assert event.type == "payment.succeeded"


def test_a_notify_signed_with_another_key_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.wrong_key(_checkout()))


@pytest.mark.parametrize("sign", [None, "", "not base64!", "QUJD", "A" * 344])
def test_a_notify_without_a_valid_sign_is_refused(kit, provider, sign):
    params = form(kit.callback(notify(kit)))
    params.pop("sign")
    if sign is not None:
        params["sign"] = sign
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(urlencode(params).encode()))


def test_a_notify_claiming_another_sign_type_is_refused(kit, provider):
    params = form(kit.callback(notify(kit)))
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(urlencode({**params, "sign_type": "RSA"}).encode()))


# ---------------------------------------------------------------- notify_time


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (0, True),
        (25 * 3600, True),  # Alipay's last retry
        (NOTIFY_MAX_AGE + 60, False),  # after it: a replay
        (-240, True),  # a clock a little ahead
        (-360, False),  # too far in the future
    ],
    ids=["now", "last_retry", "stale", "slightly_ahead", "future"],
)
def test_a_notify_is_accepted_only_within_alipays_retry_window(kit, provider, age, accepted):
    now = int(time.time())
    sent = datetime.fromtimestamp(now - age, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    callback = kit.callback(notify(kit, notify_time=sent))
    if accepted:
        assert verify(provider, callback, now=now)
    else:
        with pytest.raises(InvalidSignature):
            verify(provider, callback, now=now)


@pytest.mark.parametrize("sent", [None, "2026-03-01T12:00:00+08:00", "yesterday"])
def test_a_notify_without_a_readable_notify_time_is_refused(kit, provider, sent):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.callback(notify(kit, notify_time=sent)))


def test_the_kits_stale_notify_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.stale(_checkout()))


# ---------------------------------------------------------------- bound to this merchant


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"app_id": "2021000000000999"}, "wrong_app_id"),
        ({"seller_id": "2088000000000999"}, "wrong_seller_id"),
        ({"seller_id": None}, "wrong_seller_id"),
    ],
    ids=["other_app", "other_seller", "no_seller"],
)
def test_a_validly_signed_notify_for_another_merchant_is_refused(kit, provider, change, code):
    with pytest.raises(BadInput) as refused:
        verify(provider, kit.callback(notify(kit, **change)))
    assert refused.value.code == code


@pytest.mark.parametrize("currency", ["USD", "HKD", "cny"])
def test_a_notify_priced_in_another_currency_is_refused(kit, provider, currency):
    with pytest.raises(BadInput) as refused:
        verify(provider, kit.callback(notify(kit, trans_currency=currency)))
    assert refused.value.code == "currency_not_supported"


def test_the_kits_other_currency_notify_is_refused(kit, provider):
    with pytest.raises(BadInput):
        verify(provider, kit.paid(_checkout(), currency=kit.other_currency))


def test_a_notify_naming_cny_is_accepted(kit, provider):
    [event] = verify(provider, kit.callback(notify(kit, trans_currency="CNY")))
    assert event.amount == Money(amount=1999, currency="CNY")


# ---------------------------------------------------------------- what a status means


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("TRADE_SUCCESS", "payment.succeeded"),
        ("TRADE_FINISHED", "payment.succeeded"),
        ("TRADE_CLOSED", "payment.failed"),  # closed unpaid (no refund fields)
        ("WAIT_BUYER_PAY", None),
        ("SOMETHING_NEW", None),
    ],
)
def test_each_trade_status_means_what_alipay_documents(kit, provider, status, expected):
    events = verify(provider, kit.callback(notify(kit, status)))
    assert [event.type for event in events] == ([expected] if expected else [])


def test_a_notify_about_something_else_than_a_trade_is_acknowledged_and_ignored(kit, provider):
    assert verify(provider, kit.callback(notify(kit, notify_type="batch_trans_notify"))) == []


def test_a_full_refund_notify_is_a_refund_of_the_whole_payment(kit, provider):
    params = notify(
        kit, "TRADE_CLOSED", refund_fee="19.99", gmt_refund="2026-03-01 12:10:00.320", out_biz_no="rf_1"
    )
    [event] = verify(provider, kit.callback(params))
    assert event.type == "refund.succeeded" and event.refund_id == "rf_1"
    assert (event.order_id, event.payment_id) == (ORDER_ID, trade_number(ORDER_ID))
    assert event.amount == Money(amount=1999, currency="CNY") and event.event_id == params["notify_id"]


def test_a_partial_refund_notify_reports_what_was_given_back(kit, provider):
    params = notify(
        kit, "TRADE_SUCCESS", refund_fee="5.00", gmt_refund="2026-03-01 12:10:00.320", out_biz_no="rf_2"
    )
    [event] = verify(provider, kit.callback(params))
    assert event.type == "refund.succeeded" and event.amount == Money(amount=500, currency="CNY")


def test_the_kits_refund_notify_is_a_full_refund(kit, provider):
    [event] = verify(provider, kit.refunded(_checkout()))
    assert event.type == "refund.succeeded" and event.amount.amount == 1999


@pytest.mark.parametrize(
    "change",
    [
        {"gmt_refund": "2026-03-01 12:10:00.320"},  # a refund without its amount
        {"refund_fee": "5.00", "trade_status": "WAIT_BUYER_PAY"},  # a refund of a trade never paid
        {"refund_fee": "5.0.0"},
    ],
    ids=["no_refund_fee", "never_paid", "bad_refund_fee"],
)
def test_an_unreadable_refund_notify_is_refused(kit, provider, change):
    with pytest.raises(BadInput):
        verify(provider, kit.callback(notify(kit, **change)))


@pytest.mark.parametrize("missing", ["notify_id", "out_trade_no", "trade_no", "trade_status", "total_amount"])
def test_a_notify_missing_what_the_shop_needs_is_refused(kit, provider, missing):
    with pytest.raises(BadInput):
        verify(provider, kit.callback(notify(kit, **{missing: None})))


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(("text", "fen"), [("19.99", 1999), ("0.01", 1), ("100", 10000), ("7.5", 750)])
def test_exact_yuan_amounts_are_read_exactly(kit, provider, text, fen):
    [event] = verify(provider, kit.callback(notify(kit, total=text)))
    assert event.amount == Money(amount=fen, currency="CNY")


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "-1",
        "19.999",
        "１９",
        "19.",
        ".5",
        "+1",
        " 19.99",
        "1,000",
        "0x10",
        "NaN",
        "Infinity",
        "9" * 30,
    ],
)
def test_anything_but_an_exact_yuan_amount_is_refused(kit, provider, text):
    with pytest.raises(BadInput):
        verify(provider, kit.callback(notify(kit, total=text)))


# ---------------------------------------------------------------- hostile bodies


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"total_amount=19.99&sign=\xff\xfe", "application/x-www-form-urlencoded"),  # not UTF-8
        (b"subject=%FF%FE&sign=abc", "application/x-www-form-urlencoded"),  # %-encoded non-UTF-8
        (b"subject=%D6%D0%CE%C4&sign=abc", "application/x-www-form-urlencoded; charset=GBK"),
        (b"total_amount", "application/x-www-form-urlencoded"),  # a field without '='
        (b"a=1&" * 300 + b"sign=abc", "application/x-www-form-urlencoded"),  # too many fields
        (b"sign=" + b"A" * 70_000, "application/x-www-form-urlencoded"),  # too large
    ],
    ids=["raw_bytes", "percent_bytes", "gbk", "no_equals", "many_fields", "huge_body"],
)
def test_a_malformed_body_is_refused_without_a_crash(provider, body, content_type):
    with pytest.raises(BadInput):
        provider.verify_callback({"content-type": content_type}, body, now=int(time.time()))


def test_a_notify_declaring_another_charset_is_refused(kit, provider):
    with pytest.raises(BadInput):
        verify(provider, kit.callback(notify(kit, charset="gbk")))


def test_a_parameter_given_twice_is_refused(kit, provider):
    """Which of two `total_amount`s was signed? Neither is trusted."""
    callback = kit.callback(notify(kit))
    with pytest.raises(BadInput):
        verify(provider, Callback(callback.body + b"&total_amount=0.01", callback.headers))


@pytest.mark.parametrize("body", [b"", b'{"trade_status": "TRADE_SUCCESS"}', b"<xml></xml>"])
def test_a_body_that_is_no_notify_at_all_is_refused(provider, body):
    with pytest.raises((InvalidSignature, BadInput)):
        provider.verify_callback({}, body, now=int(time.time()))


@pytest.mark.parametrize("field", ["out_trade_no", "trade_no", "notify_id", "out_biz_no"])
def test_a_huge_value_even_validly_signed_is_refused(kit, provider, field):
    with pytest.raises(BadInput):
        verify(provider, kit.callback(notify(kit, refund_fee="1.00", **{field: "9" * 5000})))


def test_the_acknowledgement_is_exactly_success(provider, kit):
    reply = provider.acknowledgement()
    assert (reply.status, reply.content_type, reply.body) == (200, "text/plain", "success")
    assert kit.acknowledged(reply.status, reply.body.encode())


# ---------------------------------------------------------------- the page-pay redirect


def test_page_pay_is_a_signed_redirect_for_the_exact_amount(kit, provider):
    start = provider.start(unpaid(amount=1999), return_url="https://shop.example/o/" + ORDER_ID)
    assert start.kind == "redirect"
    url = urlsplit(start.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://openapi.alipay.com/gateway.do"
    params = dict(parse_qsl(url.query))
    assert (params["method"], params["charset"], params["sign_type"], params["version"]) == (
        "alipay.trade.page.pay",
        "utf-8",
        "RSA2",
        "1.0",
    )
    assert (params["app_id"], params["notify_url"]) == (APP_ID, NOTIFY_URL)
    assert params["return_url"] == "https://shop.example/o/" + ORDER_ID
    sent = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    assert abs(sent.timestamp() - time.time()) < 60  # Beijing time, not the server's zone
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == ORDER_ID and biz["total_amount"] == "19.99"
    assert biz["product_code"] == "FAST_INSTANT_TRADE_PAY"
    assert biz["time_expire"] == "2026-03-01 12:15:00"  # the order's expiry (04:15 UTC) in Beijing time


@pytest.mark.parametrize(("fen", "text"), [(1, "0.01"), (10, "0.10"), (100000, "1000.00")])
def test_page_pay_states_the_amount_in_yuan_exactly(provider, fen, text):
    start = provider.start(unpaid(amount=fen), return_url="https://shop.example/o/x")
    biz = json.loads(dict(parse_qsl(urlsplit(start.url).query))["biz_content"])
    assert biz["total_amount"] == text


def test_an_order_in_another_currency_starts_nothing(provider):
    with pytest.raises(BadInput) as refused:
        provider.start(unpaid(currency="USD"), return_url="https://shop.example/o/x")
    assert refused.value.code == "currency_not_supported"


def test_no_key_shows_in_the_providers_repr(kit, provider):
    shown = repr(provider) + str(AlipayConfig(**kit.config()))
    for pem in (private_pem(kit.app_key), public_pem(kit.alipay_key)):
        assert pem.splitlines()[1] not in shown
    assert "PRIVATE" not in shown


def test_the_checkout_kind_is_page_unless_configured(kit):
    assert AlipayConfig(**kit.config()).checkout == "page"
    assert AlipayConfig(**kit.config(), checkout="qr").checkout == "qr"
    with pytest.raises(ValidationError):
        AlipayConfig(**kit.config(), checkout="app")


# ---------------------------------------------------------------- the signed answer's text


def test_a_response_object_is_cut_out_of_the_body_exactly_as_written():
    inner = '{ "code" : "10000",  "msg":"Success", "sub_msg": "交易不存在 {}", "n": [1, {"a": "}"}] }'
    body = f' {{"alipay_trade_query_response" : {inner} ,"sign":"abc"}} '
    members = response_members(body)
    assert members["alipay_trade_query_response"][0] == inner
    assert members["sign"] == ('"abc"', "abc")


@pytest.mark.parametrize(
    "body",
    [
        '{"a_response": {}, "a_response": {}, "sign": "x"}',  # which one was signed?
        '{"a_response": {}} trailing',
        '[{"a_response": {}}]',
        '{"a_response": {}',
        '{"a_response" {}}',
        "[" * 100_000,
    ],
    ids=["repeated", "trailing", "array", "unclosed", "no_colon", "deep"],
)
def test_a_malformed_answer_body_is_refused(body):
    with pytest.raises((ValueError, RecursionError)):
        response_members(body)


# ---------------------------------------------------------------- python-alipay-sdk as a peer


def sdk(private_key: str, public_key: str) -> AliPay:
    return AliPay(appid=APP_ID, app_private_key_string=private_key, alipay_public_key_string=public_key)


def test_a_notify_signed_by_the_sdk_verifies(kit, provider):
    """The SDK holding "Alipay's" private key as its app key signs a notify the way Alipay does."""
    alipay = sdk(private_pem(kit.alipay_key), public_pem(kit.app_key))
    params = notify(kit)  # without sign_type: a notify's sign does not cover it
    body = alipay.sign_data(dict(params)) + "&sign_type=RSA2"
    [event] = verify(provider, Callback(body.encode()))
    assert event.event_id == params["notify_id"] and event.amount.amount == 1999


def test_the_kits_notify_verifies_with_the_sdk(kit):
    shop = sdk(private_pem(kit.app_key), public_pem(kit.alipay_key))
    params = form(kit.callback(notify(kit)))
    signature = params.pop("sign")
    assert shop.verify(dict(params), signature)
    assert not shop.verify({**params, "total_amount": "0.01"}, signature)


def test_miaofa_signs_requests_exactly_as_the_sdk_does(kit, provider):
    """PKCS#1 v1.5 signatures are deterministic: with the app's key, the SDK's sign of the same
    parameters must be miaofa's, byte for byte; and the SDK verifies it with the app's public key."""
    start = provider.start(unpaid(), return_url="https://shop.example/o/" + ORDER_ID)
    params = dict(parse_qsl(urlsplit(start.url).query))
    signature = params.pop("sign")
    app = sdk(private_pem(kit.app_key), public_pem(kit.app_key))
    assert dict(parse_qsl(app.sign_data(dict(params))))["sign"] == signature
    # `_verify` is private in python-alipay-sdk; its public `verify` drops sign_type, which a
    # request's sign covers (only a notify's sign leaves it out).
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    assert app._verify(content, signature)


def test_a_provider_with_another_alipay_key_refuses_the_notify(kit):
    other = {**kit.config(), "alipay_public_key": public_pem(kit.app_key)}  # a key, but not Alipay's
    stranger = AlipayProvider(AlipayConfig(**other), NOTIFY_URL)
    with pytest.raises(InvalidSignature):
        verify(stranger, kit.callback(notify(kit)))


def _checkout() -> dict:
    """The checkout response the kit builds notifies from (POST /api/orders)."""
    return {"order_id": ORDER_ID, "total": {"amount": 1999, "currency": "CNY"}}
