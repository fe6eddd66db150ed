"""WeChat Pay API v3 notifies: only WeChat Pay's signature, within five minutes, over a resource our
APIv3 key decrypts, for our app and merchant, becomes an event; everything else is refused, never a
crash. The kit's notifies and the provider's crypto are checked against the wechatpayv3 SDK, an
independent implementation of the same scheme."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wechatpayv3 import WeChatPay
from wechatpayv3.utils import build_authorization, rsa_sign

from shared.errors import BadInput, InvalidSignature
from shared.money import Money
from shared.providers.config import parse_configs
from shared.providers.wechatpay import WechatPayProvider
from tests.providers import Callback, shop_order
from tests.providers.wechatpay import Kit, authorization_error, wechatpay_headers

ORDER = {"order_id": "ord_5f0c1a2b3c4d5e6f7a8b", "total": {"amount": 1999, "currency": "CNY"}}
NOTIFY_URL = "https://shop.example/webhooks/wechatpay"


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit()  # not started: these tests make no outbound call


@pytest.fixture(scope="module")
def provider(kit) -> WechatPayProvider:
    config = parse_configs({"wechatpay": kit.config()}).wechatpay  # the kit's entry passes validation
    assert config is not None
    return WechatPayProvider(config, NOTIFY_URL)


def verify(provider: WechatPayProvider, callback: Callback, now: int | None = None):
    headers = {name.lower(): value for name, value in callback.headers.items()}  # as the webhook hands them
    return provider.verify_callback(headers, callback.body, now=int(time.time()) if now is None else now)


def resigned(kit: Kit, callback: Callback, change) -> Callback:
    """The notify's JSON changed by `change`, then signed again by WeChat Pay's key."""
    body = json.loads(callback.body)
    change(body)
    return kit.signed(json.dumps(body, ensure_ascii=False).encode())


def refund_resource(kit: Kit, status: str = "SUCCESS", **changes) -> dict:
    trade = kit.transaction(ORDER)
    resource = {
        "mchid": kit.mchid,
        "out_trade_no": ORDER["order_id"],
        "transaction_id": trade["transaction_id"],
        "out_refund_no": f"rf_{ORDER['order_id']}",
        "refund_id": "50300000000000000000000000001",
        "refund_status": status,
        "success_time": "2026-11-22T12:00:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 1999, "refund": 500, "payer_total": 1999, "payer_refund": 500},
    }
    resource.update(changes)
    return resource


# ---------------------------------------------------------------- a genuine notify


def test_a_paid_notify_is_a_payment_of_exactly_the_order_total(kit, provider):
    (event,) = verify(provider, kit.paid(ORDER))

    trade = kit.transaction(ORDER)
    assert event.provider == "wechatpay" and event.type == "payment.succeeded"
    assert event.order_id == ORDER["order_id"]
    assert event.payment_id == trade["transaction_id"]
    assert event.amount == Money(amount=1999, currency="CNY")
    assert event.event_id == json.loads(kit.paid(ORDER).body)["id"]


def test_a_notify_sent_again_is_the_same_event(kit, provider):
    first, again = kit.paid(ORDER), kit.paid(ORDER)
    assert first.headers["Wechatpay-Nonce"] != again.headers["Wechatpay-Nonce"]  # a fresh delivery
    assert verify(provider, first) == verify(provider, again)


def test_a_payment_of_another_amount_is_reported_as_it_is(kit, provider):
    (event,) = verify(provider, kit.paid(ORDER, amount=1))
    assert event.amount == Money(amount=1, currency="CNY")  # the webhook then refuses it for this order (I3)


# ---------------------------------------------------------------- the signature


def test_a_notify_changed_after_signing_is_refused(kit, provider):
    genuine = kit.paid(ORDER)
    with pytest.raises(InvalidSignature):
        verify(provider, kit.tampered(genuine))
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(body=genuine.body + b" ", headers=genuine.headers))


def test_a_notify_signed_with_another_key_under_the_same_serial_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.wrong_key(ORDER))


def test_a_notify_signed_under_an_unknown_serial_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.paid_notify(ORDER, serial="PUB_KEY_ID_0000000000000000000000000000000000"))


@pytest.mark.parametrize("age", [6 * 60, -6 * 60], ids=["stale", "future"])
def test_a_notify_signed_outside_five_minutes_is_refused(kit, provider, age):
    now = int(time.time())
    with pytest.raises(InvalidSignature):
        verify(provider, kit.paid_notify(ORDER, timestamp=now - age), now=now)


@pytest.mark.parametrize("age", [4 * 60, -4 * 60], ids=["late", "early"])
def test_a_notify_signed_within_five_minutes_is_accepted(kit, provider, age):
    now = int(time.time())
    assert verify(provider, kit.paid_notify(ORDER, timestamp=now - age), now=now)


def test_the_kits_stale_notify_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.stale(ORDER))


def test_wechat_pays_signature_probe_is_refused(kit, provider):
    with pytest.raises(InvalidSignature):
        verify(provider, kit.probe(ORDER))


@pytest.mark.parametrize(
    "header", ["Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial"]
)
def test_a_notify_missing_a_signature_header_is_refused(kit, provider, header):
    genuine = kit.paid(ORDER)
    headers = {name: value for name, value in genuine.headers.items() if name != header}
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(body=genuine.body, headers=headers))


@pytest.mark.parametrize(
    "header, value",
    [
        ("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3"),
        ("Wechatpay-Timestamp", "soon"),
        ("Wechatpay-Timestamp", "１７９５３２００００"),  # full-width digits int() would accept
        ("Wechatpay-Timestamp", "9" * 5000),
        ("Wechatpay-Timestamp", "-60"),
        ("Wechatpay-Signature", "!!not base64!!"),
        ("Wechatpay-Signature", "c2lnbmF0dXJl"),
        ("Wechatpay-Nonce", "n" * 10_000),
        ("Wechatpay-Serial", "ＰＵＢ"),
    ],
)
def test_garbage_in_a_signature_header_is_refused(kit, provider, header, value):
    genuine = kit.paid(ORDER)
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(body=genuine.body, headers={**genuine.headers, header: value}))


# ---------------------------------------------------------------- the encrypted resource


def test_a_resource_encrypted_with_another_apiv3_key_is_refused(kit, provider):
    other = kit.notify(
        "TRANSACTION.SUCCESS", kit.transaction(ORDER), apiv3_key="0123456789abcdef0123456789abcdef"
    )
    with pytest.raises(InvalidSignature):
        verify(provider, other)


def test_a_resource_whose_associated_data_was_changed_is_refused(kit, provider):
    def change(body):
        body["resource"]["associated_data"] = "refund"

    with pytest.raises(InvalidSignature):
        verify(provider, resigned(kit, kit.paid(ORDER), change))


@pytest.mark.parametrize("field, value", [("appid", "wx0000000000000000"), ("mchid", "1900000001")])
def test_a_payment_for_another_app_or_merchant_is_refused(kit, provider, field, value):
    trade = {**kit.transaction(ORDER), field: value}
    with pytest.raises(BadInput):
        verify(provider, kit.notify("TRANSACTION.SUCCESS", trade))


def test_a_refund_for_another_merchant_is_refused(kit, provider):
    with pytest.raises(BadInput):
        verify(provider, kit.notify("REFUND.SUCCESS", refund_resource(kit, mchid="1900000001")))


# ---------------------------------------------------------------- what each notify means


@pytest.mark.parametrize(
    "event_type, status, expected",
    [
        ("REFUND.SUCCESS", "SUCCESS", "refund.succeeded"),
        ("REFUND.ABNORMAL", "ABNORMAL", "refund.failed"),
        ("REFUND.CLOSED", "CLOSED", "refund.failed"),
    ],
)
def test_a_refund_notify_is_a_refund_event_of_the_amount_given_back(
    kit, provider, event_type, status, expected
):
    (event,) = verify(provider, kit.notify(event_type, refund_resource(kit, status), event_id="EV-refund-1"))

    assert event.type == expected and event.event_id == "EV-refund-1"
    assert event.order_id == ORDER["order_id"]
    assert event.payment_id == kit.transaction(ORDER)["transaction_id"]  # the payment paid(order) reported
    assert event.refund_id == f"rf_{ORDER['order_id']}"
    assert event.amount == Money(amount=500, currency="CNY")  # a refund notify names no currency: CNY


def test_a_refund_notify_naming_its_currency_keeps_it(kit, provider):
    resource = refund_resource(kit)
    resource["amount"]["currency"] = "USD"
    (event,) = verify(provider, kit.notify("REFUND.SUCCESS", resource))
    assert event.amount == Money(amount=500, currency="USD")  # the webhook refuses it for a CNY order


def test_the_kits_refunded_notify_gives_back_the_whole_payment(kit, provider):
    (event,) = verify(provider, kit.refunded(ORDER))
    assert event.type == "refund.succeeded"
    assert event.payment_id == kit.transaction(ORDER)["transaction_id"]
    assert event.amount == Money(amount=1999, currency="CNY")


def test_a_refund_notify_contradicting_its_event_type_is_refused(kit, provider):
    with pytest.raises(BadInput):
        verify(provider, kit.notify("REFUND.SUCCESS", refund_resource(kit, "ABNORMAL")))


@pytest.mark.parametrize(
    "event_type, resource",
    [
        ("TRANSACTION.SUCCESS", {"trade_state": "NOTPAY"}),
        ("TRANSACTION.CLOSED", {}),
        ("PROFITSHARING.SUCCESS", {}),
        ("MCHTRANSFER.BILL.FINISHED", {}),
    ],
)
def test_a_verified_notify_the_shop_does_not_act_on_is_no_event(kit, provider, event_type, resource):
    assert verify(provider, kit.notify(event_type, {**kit.transaction(ORDER), **resource})) == []


def test_the_acknowledgement_is_a_bare_success_status(kit, provider):
    reply = provider.acknowledgement()
    assert reply.status in (200, 204) and reply.body == ""
    assert kit.acknowledged(reply.status, reply.body.encode())


# ---------------------------------------------------------------- hostile input


def _good(kit: Kit) -> dict:
    return json.loads(kit.paid(ORDER).body)


def _with_resource(kit: Kit, **changes) -> bytes:
    good = _good(kit)
    return json.dumps({**good, "resource": {**good["resource"], **changes}}).encode()


def _plaintext(kit: Kit, data: bytes) -> bytes:
    return kit.notify("TRANSACTION.SUCCESS", data).body


def _trade(kit: Kit, **changes) -> bytes:
    return kit.notify("TRANSACTION.SUCCESS", {**kit.transaction(ORDER), **changes}).body


HOSTILE = {
    "not json": lambda kit: b"event=TRANSACTION.SUCCESS",
    "not utf-8": lambda kit: b"\xff\xfe{}",
    "deep nesting": lambda kit: b"[" * 30_000 + b"]" * 30_000,
    "a list": lambda kit: b"[]",
    "empty object": lambda kit: b"{}",
    "resource a string": lambda kit: json.dumps({**_good(kit), "resource": "x"}).encode(),
    "another resource type": lambda kit: json.dumps({**_good(kit), "resource_type": "plain"}).encode(),
    "another algorithm": lambda kit: _with_resource(kit, algorithm="AEAD_AES_128_GCM"),
    "ciphertext not base64": lambda kit: _with_resource(kit, ciphertext="%%%"),
    "nonce too short": lambda kit: _with_resource(kit, nonce="abc"),
    "id a number": lambda kit: json.dumps({**_good(kit), "id": 1}).encode(),
    "huge": lambda kit: json.dumps({**_good(kit), "summary": "x" * 2_000_000}).encode(),
    "plaintext not json": lambda kit: _plaintext(kit, b"trade_state=SUCCESS"),
    "plaintext a list": lambda kit: _plaintext(kit, b"[1, 2]"),
    "plaintext deep": lambda kit: _plaintext(kit, b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    "total a string": lambda kit: _trade(kit, amount={"total": "1999", "currency": "CNY"}),
    "total a float": lambda kit: _trade(kit, amount={"total": 19.99, "currency": "CNY"}),
    "total negative": lambda kit: _trade(kit, amount={"total": -1, "currency": "CNY"}),
    "total true": lambda kit: _trade(kit, amount={"total": True, "currency": "CNY"}),
    "total huge": lambda kit: _trade(kit, amount={"total": 10**30, "currency": "CNY"}),
    "currency lower case": lambda kit: _trade(kit, amount={"total": 1999, "currency": "cny"}),
    "amount null": lambda kit: _trade(kit, amount=None),
    "no amount total": lambda kit: _trade(kit, amount={"currency": "CNY"}),
    "no transaction_id": lambda kit: _trade(kit, transaction_id=None),
    "out_trade_no huge": lambda kit: _trade(kit, out_trade_no="o" * 20_000),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_body_signed_by_wechat_pay_is_bad_input(kit, provider, case):
    with pytest.raises(BadInput):
        verify(provider, kit.signed(HOSTILE[case](kit)))


@pytest.mark.parametrize("case", [name for name in HOSTILE if name != "huge"])  # huge: refused unread
def test_a_hostile_body_not_signed_by_wechat_pay_is_an_invalid_signature(kit, provider, case):
    with pytest.raises(InvalidSignature):
        verify(provider, Callback(body=HOSTILE[case](kit), headers=kit.paid(ORDER).headers))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2048))
def test_any_signed_bytes_are_refused_as_bad_input(kit, provider, body):
    with pytest.raises(BadInput):
        verify(provider, kit.signed(body))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["wechatpay-signature", "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial"]
        ),
        st.text(max_size=64),
    )
)
def test_any_headers_but_wechat_pays_signature_are_refused(kit, provider, headers):
    with pytest.raises(InvalidSignature):
        provider.verify_callback(headers, kit.paid(ORDER).body, now=int(time.time()))


def test_the_provider_shows_no_key(kit, provider):
    shown = repr(provider) + str(provider)
    assert kit.apiv3_key not in shown and "PRIVATE" not in shown and "PUBLIC" not in shown
    other = kit.notify(
        "TRANSACTION.SUCCESS", kit.transaction(ORDER), apiv3_key="0123456789abcdef0123456789abcdef"
    )
    with pytest.raises(InvalidSignature) as refused:
        verify(provider, other)
    assert kit.apiv3_key not in str(refused.value)


def test_an_order_in_another_currency_is_refused_before_any_call(provider):
    created = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    order = shop_order("wechatpay", "ord_usd", currency="USD", created=created)
    with pytest.raises(BadInput):
        provider.start(order, "https://shop.example/orders/ord_usd")


# ---------------------------------------------------------------- the wechatpayv3 SDK as a peer


@pytest.fixture(scope="module")
def sdk(kit) -> WeChatPay:
    return kit.sdk(NOTIFY_URL)  # public-key mode: the SDK downloads no platform certificate


def sdk_signed(kit: Kit, body: bytes, key) -> Callback:
    """`body` with headers whose signature the SDK's `rsa_sign` made over WeChat Pay's message."""
    stamp, nonce = str(int(time.time())), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
    signature = rsa_sign(key, f"{stamp}\n{nonce}\n{body.decode()}\n")
    headers = {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": kit.platform_serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return Callback(body=body, headers=headers)


def test_a_notify_signed_by_the_sdk_verifies(kit, provider):
    body = kit.paid(ORDER).body
    (event,) = verify(provider, sdk_signed(kit, body, kit.platform_key))
    assert event.amount == Money(amount=1999, currency="CNY")
    with pytest.raises(InvalidSignature):
        verify(provider, sdk_signed(kit, body, kit.imposter_key))


def test_the_kits_notify_passes_the_sdks_verification_and_decryption(kit, sdk):
    notify = kit.paid(ORDER)
    opened = sdk.callback(notify.headers, notify.body)

    assert opened is not None and opened["event_type"] == "TRANSACTION.SUCCESS"
    assert opened["resource"]["out_trade_no"] == ORDER["order_id"]
    assert opened["resource"]["transaction_id"] == kit.transaction(ORDER)["transaction_id"]
    assert opened["resource"]["amount"]["total"] == 1999
    # ...and the SDK refuses what miaofa refuses: the kit's bad notifies are bad by WeChat Pay's rules.
    assert sdk.callback(kit.wrong_key(ORDER).headers, notify.body) is None
    tampered = kit.tampered(notify)
    assert sdk.callback(tampered.headers, tampered.body) is None


def test_an_authorization_the_sdk_builds_passes_the_fakes_verifier(kit):
    path = "/v3/pay/transactions/native"
    data = {
        "appid": kit.appid,
        "mchid": kit.mchid,
        "out_trade_no": ORDER["order_id"],
        "amount": {"total": 1999},
    }
    header = build_authorization(path, "POST", kit.mchid, kit.merchant_serial, kit.merchant_key, data=data)
    body = json.dumps(data).encode()  # what build_authorization signed, and what the SDK sends
    public, now = kit.merchant_key.public_key(), int(time.time())

    assert (
        authorization_error(header, "POST", path, body, public, kit.mchid, kit.merchant_serial, now) is None
    )
    tampered = body.replace(b"1999", b"1")
    assert authorization_error(header, "POST", path, tampered, public, kit.mchid, kit.merchant_serial, now)
    imposter = build_authorization(path, "POST", kit.mchid, kit.merchant_serial, kit.imposter_key, data=data)
    assert authorization_error(imposter, "POST", path, body, public, kit.mchid, kit.merchant_serial, now)


def test_the_kits_answer_signature_is_the_sdks_scheme(kit, sdk):
    body = b'{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}'
    headers = wechatpay_headers(kit.platform_key, kit.platform_serial, body)
    # Core._verify_signature is the SDK's private check of an answer; there is no public one.
    assert sdk._core._verify_signature(headers, body.decode()) is True
    assert sdk._core._verify_signature(headers, body.decode().replace("abc", "abd")) is False
    assert base64.b64decode(headers["Wechatpay-Signature"])  # base64, as the docs say
