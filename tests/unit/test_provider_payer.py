"""The payer (docs/payments.md "Payer"): every provider's payment callback and query answer, as the
kits build them after the providers' docs, names the paying account as `<provider>:<its id>` (and
the card's country where the provider gives it); a message without one names none; a malformed
one never refuses the payment and is never echoed. The providers' own SDKs are the independent
peers: they sign and read the same fields. No socket: queries go to the kits' fakes in process."""

import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import stripe
from alipay import AliPay
from pydantic import ValidationError

from infra.local.sandbox import SandboxProvider as LocalSandbox
from shared.errors import BadInput, InvalidSignature
from shared.money import Money
from shared.payments import PaymentEvent, card_country_of, payer_of
from shared.providers.alipay import AlipayProvider
from shared.providers.config import AlipayConfig, StripeConfig, parse_configs
from shared.providers.sandbox import SandboxProvider, parse_sandbox_event
from shared.providers.signatures import sandbox_signature
from shared.providers.stripe import StripeProvider
from shared.providers.wechatpay import WechatPayProvider
from tests.providers import Callback, as_checkout, shop_order
from tests.providers.alipay import Kit as AlipayKit
from tests.providers.fake_server import InProcess, InProcessResponse
from tests.providers.keys import private_pem, public_pem
from tests.providers.stripe import Kit as StripeKit
from tests.providers.stripe import stripe_signature
from tests.providers.wechatpay import FakeWechatPay
from tests.providers.wechatpay import Kit as WechatKit
from tests.support import event as load_event

ORDER = {"order_id": "ord_5f0c1a2b3c4d5e6f7a8b", "total": {"amount": 1999, "currency": "CNY"}}


def headers_of(callback: Callback) -> dict[str, str]:
    return {name.lower(): value for name, value in callback.headers.items()}


# ---------------------------------------------------------------- the event and its helpers


def paid_event(**fields) -> PaymentEvent:
    base = {
        "provider": "sandbox",
        "event_id": "evt_1",
        "type": "payment.succeeded",
        "order_id": "ord_1",
        "payment_id": "pay_1",
        "amount": Money(amount=1999, currency="CNY"),
    }
    return PaymentEvent(**{**base, **fields})


def test_the_payer_and_card_country_stay_out_of_the_events_repr():
    event = paid_event(payer="alipay:2088102177846880", card_country="CN")
    assert "2088102177846880" not in repr(event) + str(event) + f"{event}"
    assert "'CN'" not in repr(event)
    assert event.payer == "alipay:2088102177846880" and event.card_country == "CN"


@pytest.mark.parametrize(
    "fields",
    [{"payer": "2088102177846880"}, {"payer": "alipay:has a space"}, {"card_country": "cnx"}],
    ids=["no-provider", "space", "country"],
)
def test_a_malformed_payer_is_refused_without_being_echoed(fields):
    with pytest.raises(ValidationError) as refused:
        paid_event(**fields)
    assert list(fields.values())[0] not in str(refused.value)


@pytest.mark.parametrize(
    ("account", "named"),
    [
        ("2088102177846880", "alipay:2088102177846880"),
        ("", None),
        (None, None),
        (12345, None),
        ("has space", None),
        ("x" * 201, None),
        ("买家", None),
    ],
)
def test_payer_of_names_an_id_or_nothing(account, named):
    assert payer_of("alipay", account) == named


@pytest.mark.parametrize(
    ("code", "country"), [("us", "US"), ("CN", "CN"), ("USA", None), ("", None), (None, None)]
)
def test_card_country_of_is_two_letters_in_upper_case_or_nothing(code, country):
    assert card_country_of(code) == country


# ---------------------------------------------------------------- sandbox


def sandbox_body(kind: str = "payment.succeeded", **data) -> bytes:
    fixture = load_event("sandbox_payment_succeeded", type=kind)
    fixture["data"] = {**fixture["data"], **data}
    return json.dumps(fixture).encode()


def test_a_sandbox_callback_names_its_payer_and_card_country():
    event = parse_sandbox_event(sandbox_body(payer="buyer_7f3a", card_country="DE"))
    assert (event.payer, event.card_country) == ("sandbox:buyer_7f3a", "DE")


def test_a_sandbox_callback_without_a_payer_names_none():
    event = parse_sandbox_event(sandbox_body())
    assert (event.payer, event.card_country) == (None, None)


def test_a_sandbox_refund_names_no_payer():
    event = parse_sandbox_event(sandbox_body("refund.succeeded", payer="buyer_7f3a", card_country="DE"))
    assert event.type == "refund.succeeded" and (event.payer, event.card_country) == (None, None)


@pytest.mark.parametrize(
    "data", [{"payer": "buyer with spaces"}, {"payer": "b" * 201}, {"card_country": "de"}], ids=str
)
def test_a_sandbox_callback_with_a_malformed_payer_is_bad_input_that_does_not_echo_it(data):
    with pytest.raises(BadInput) as refused:
        parse_sandbox_event(sandbox_body(**data))
    assert list(data.values())[0] not in refused.value.message


class LocalSandboxPool:
    """The local sandbox (infra/local/sandbox.py) answering the shop's provider in process."""

    def __init__(self, sandbox: LocalSandbox) -> None:
        self.sandbox = sandbox

    def request(self, method, url, headers=None, body=None, **_):
        parts = urlsplit(url)
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        status, answer_headers, data = self.sandbox.handle(
            method, parts.path, dict(parse_qsl(parts.query)), lowered, body or b""
        )
        return InProcessResponse(status, answer_headers, data)


def test_the_sandbox_names_the_payer_it_was_paid_by_in_its_query_answer():
    secret = "whsec_unit_" + "5" * 24
    local = LocalSandbox("http://127.0.0.1:9", secret)
    local.pay("ord_paid1", 1999, "CNY", callback=False, payer="buyer_7f3a", card_country="DE")
    local.pay("ord_paid2", 1999, "CNY", callback=False)  # a buyer the sandbox says nothing about
    shop = SandboxProvider(local.api_url, secret, http=LocalSandboxPool(local))  # type: ignore[arg-type]

    [named] = shop.query("ord_paid1")
    [unnamed] = shop.query("ord_paid2")
    assert (named.payer, named.card_country) == ("sandbox:buyer_7f3a", "DE")
    assert (unnamed.payer, unnamed.card_country) == (None, None)


def test_the_local_sandboxs_callback_carries_the_scripted_buyer(monkeypatch):
    secret = "whsec_unit_" + "5" * 24
    local, sent = LocalSandbox("http://127.0.0.1:9", secret), []
    monkeypatch.setattr(local, "send", lambda body, signature=None: sent.append(body) or 200)
    assert local.pay("ord_paid1", 1999, "CNY", payer="buyer_7f3a", card_country="DE")
    assert local.pay("ord_paid2", 1999, "CNY")
    events = [parse_sandbox_event(body) for body in sent]
    assert [(e.payer, e.card_country) for e in events] == [("sandbox:buyer_7f3a", "DE"), (None, None)]


def test_the_sandbox_pay_page_takes_the_buyer_as_form_fields(monkeypatch):
    local = LocalSandbox("http://127.0.0.1:9", "whsec_unit_" + "5" * 24)
    monkeypatch.setattr(local, "send", lambda body, signature=None: 200)
    form = {"order_id": "ord_paid1", "amount": "1999", "currency": "CNY", "payer": "buyer_7f3a"}
    status, _, _ = local.handle("POST", "/_sandbox/pay", {}, {}, urlencode(form).encode())
    assert status == 200
    [paid] = local.payments_for("ord_paid1").values()
    assert paid["payer"] == "buyer_7f3a" and "card_country" not in paid


def test_the_sandbox_signature_covers_the_payer():
    body = sandbox_body(payer="buyer_7f3a")
    header = sandbox_signature("whsec_unit_" + "5" * 24, body, int(time.time()))
    shop = SandboxProvider("http://127.0.0.1:9/_sandbox/api/payments", "whsec_unit_" + "5" * 24)
    [event] = shop.verify_callback({"sandbox-signature": header}, body, now=int(time.time()))
    assert event.payer == "sandbox:buyer_7f3a"
    with pytest.raises(InvalidSignature):
        shop.verify_callback(
            {"sandbox-signature": header}, body.replace(b"buyer_7f3a", b"buyer_0000"), now=int(time.time())
        )


# ---------------------------------------------------------------- Alipay


@pytest.fixture(scope="module")
def alipay_kit() -> AlipayKit:
    return AlipayKit()  # its gateway is never started: queries reach it in process


@pytest.fixture(scope="module")
def alipay(alipay_kit) -> AlipayProvider:
    return AlipayProvider(
        AlipayConfig(**alipay_kit.config()),
        "https://shop.example/webhooks/alipay",
        http=InProcess(alipay_kit.gateway),
    )


def alipay_notify(kit: AlipayKit, status: str = "TRADE_SUCCESS", **changes: str | None) -> Callback:
    params = kit.trade_notify(ORDER["order_id"], status, "19.99")
    params.update(changes)
    return kit.callback({key: value for key, value in params.items() if value is not None})


def test_an_alipay_notify_names_the_buyers_account(alipay_kit, alipay):
    [event] = alipay.verify_callback({}, alipay_notify(alipay_kit).body, now=int(time.time()))
    assert (event.payer, event.card_country) == alipay_kit.paid_by("callback")
    assert event.payer == f"alipay:{alipay_kit.buyer}" and alipay_kit.buyer.startswith("2088")


def test_an_alipay_notify_of_an_openid_app_names_its_buyer_open_id(alipay_kit, alipay):
    open_id = "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
    callback = alipay_notify(alipay_kit, buyer_id=None, buyer_open_id=open_id)
    [event] = alipay.verify_callback({}, callback.body, now=int(time.time()))
    assert event.payer == f"alipay:{open_id}"


def test_an_alipay_notify_without_a_buyer_names_none(alipay_kit, alipay):
    [event] = alipay.verify_callback({}, alipay_notify(alipay_kit, buyer_id=None).body, now=int(time.time()))
    assert event.type == "payment.succeeded" and (event.payer, event.card_country) == (None, None)


def test_an_alipay_notify_with_a_malformed_buyer_still_pays_and_names_none(alipay_kit, alipay):
    callback = alipay_notify(alipay_kit, buyer_id="2088 0000 0000 0000")
    [event] = alipay.verify_callback({}, callback.body, now=int(time.time()))
    assert event.amount == Money(amount=1999, currency="CNY") and event.payer is None


def test_an_alipay_refund_notify_names_no_payer(alipay_kit, alipay):
    callback = alipay_notify(
        alipay_kit, "TRADE_CLOSED", refund_fee="19.99", gmt_refund="2026-11-22 12:00:00.320"
    )
    [event] = alipay.verify_callback({}, callback.body, now=int(time.time()))
    assert event.type == "refund.succeeded" and event.payer is None


def test_the_buyer_id_is_signed_content_for_python_alipay_sdk(alipay_kit, alipay):
    """The SDK, holding Alipay's key, signs a notify naming a buyer; the shop reads that buyer. And
    the SDK, as the shop's peer, says the kit's notify is Alipay's only with its own buyer_id."""
    as_alipay = AliPay(
        appid=alipay_kit.app_id,
        app_private_key_string=private_pem(alipay_kit.alipay_key),
        alipay_public_key_string=public_pem(alipay_kit.app_key),
    )
    params = alipay_kit.trade_notify(ORDER["order_id"], "TRADE_SUCCESS", "19.99", buyer_id="2088000000009999")
    body = as_alipay.sign_data(dict(params)) + "&sign_type=RSA2"
    [event] = alipay.verify_callback({}, body.encode(), now=int(time.time()))
    assert event.payer == "alipay:2088000000009999"

    as_shop = AliPay(
        appid=alipay_kit.app_id,
        app_private_key_string=private_pem(alipay_kit.app_key),
        alipay_public_key_string=public_pem(alipay_kit.alipay_key),
    )
    signed = dict(parse_qsl(alipay_notify(alipay_kit).body.decode()))
    signature = signed.pop("sign")
    assert as_shop.verify(dict(signed), signature)
    assert not as_shop.verify({**signed, "buyer_id": "2088000000009999"}, signature)


def test_an_alipay_query_answer_names_the_buyers_account(alipay_kit, alipay):
    order = {**ORDER, "order_id": "ord_alipay_lost_1"}
    alipay_kit.lost(order)
    [event] = alipay.query(order["order_id"])
    assert (event.payer, event.card_country) == alipay_kit.paid_by("query")


def test_an_alipay_query_answer_without_a_buyer_names_none(alipay_kit, alipay):
    alipay_kit.gateway.mark_paid("ord_alipay_lost_2", 1999)  # the fake then answers no buyer_user_id
    [event] = alipay.query("ord_alipay_lost_2")
    assert event.payer is None


# ---------------------------------------------------------------- WeChat Pay


@pytest.fixture(scope="module")
def wechat_kit() -> WechatKit:
    kit = WechatKit()
    kit.fake = FakeWechatPay(  # as kit.start() builds it, never started: queries reach it in process
        kit.mchid,
        kit.appid,
        kit.merchant_serial,
        kit.merchant_key.public_key(),
        kit.platform_key,
        kit.platform_serial,
    )
    return kit


@pytest.fixture(scope="module")
def wechat(wechat_kit) -> WechatPayProvider:
    config = parse_configs({"wechatpay": wechat_kit.config()}).wechatpay
    assert config is not None
    return WechatPayProvider(
        config, "https://shop.example/webhooks/wechatpay", http=InProcess(wechat_kit.fake)
    )


def test_a_wechat_pay_notify_names_the_buyers_openid(wechat_kit, wechat):
    callback = wechat_kit.paid(ORDER)
    [event] = wechat.verify_callback(headers_of(callback), callback.body, now=int(time.time()))
    assert (event.payer, event.card_country) == wechat_kit.paid_by("callback")
    assert event.payer == f"wechatpay:{wechat_kit.buyer}"


@pytest.mark.parametrize(
    "payer", [None, {}, {"openid": ""}, {"openid": 42}, {"openid": "has space"}, "oUpF8", []], ids=str
)
def test_a_wechat_pay_notify_without_a_readable_payer_still_pays_and_names_none(wechat_kit, wechat, payer):
    resource = wechat_kit.transaction(ORDER)
    if payer is None:
        del resource["payer"]
    else:
        resource["payer"] = payer
    callback = wechat_kit.notify("TRANSACTION.SUCCESS", resource)
    [event] = wechat.verify_callback(headers_of(callback), callback.body, now=int(time.time()))
    assert event.amount == Money(amount=1999, currency="CNY") and event.payer is None


def test_a_wechat_pay_refund_notify_names_no_payer(wechat_kit, wechat):
    wechat_kit.paid(ORDER)
    callback = wechat_kit.refunded(ORDER)
    [event] = wechat.verify_callback(headers_of(callback), callback.body, now=int(time.time()))
    assert event.type == "refund.succeeded" and event.payer is None


def test_the_wechatpayv3_sdk_reads_the_same_openid_from_the_notify(wechat_kit, wechat):
    callback = wechat_kit.paid(ORDER)
    opened = wechat_kit.sdk("https://shop.example/webhooks/wechatpay").callback(
        callback.headers, callback.body
    )
    [event] = wechat.verify_callback(headers_of(callback), callback.body, now=int(time.time()))
    assert opened is not None and event.payer == f"wechatpay:{opened['resource']['payer']['openid']}"


def test_a_wechat_pay_query_answer_names_the_buyers_openid(wechat_kit, wechat):
    order = {**ORDER, "order_id": "ord_wechat_lost_1"}
    wechat_kit.lost(order)
    [event] = wechat.query(order["order_id"])
    assert (event.payer, event.card_country) == wechat_kit.paid_by("query")


# ---------------------------------------------------------------- Stripe


@pytest.fixture
def stripe_kit() -> StripeKit:
    return StripeKit()  # its server is never started: queries reach it in process


def stripe_provider(kit: StripeKit) -> StripeProvider:
    config = StripeConfig(
        secret_key=kit.secret_key, webhook_secret=kit.webhook_secret, api_url="http://127.0.0.1:9"
    )
    return StripeProvider(config, "https://shop.example.com/webhooks/stripe", http=InProcess(kit.server))


def test_a_checkout_session_event_carries_no_card_so_names_no_payer(stripe_kit):
    """checkout.session.completed is what the shop acts on; the Session holds no PaymentMethod and no
    Charge (only the PaymentIntent's id), so no fingerprint and no card country."""
    shop = stripe_provider(stripe_kit)
    for body in (
        json.dumps(load_event("stripe_checkout_session_completed")).encode(),
        stripe_kit.paid(ORDER).body,
    ):
        header = stripe_signature(stripe_kit.webhook_secret, body, int(time.time()))
        [event] = shop.verify_callback({"stripe-signature": header}, body, now=int(time.time()))
        assert event.type == "payment.succeeded" and (event.payer, event.card_country) == (None, None)
    assert stripe_kit.paid_by("callback") == (None, None)


def test_stripes_own_sdk_models_the_session_without_card_details():
    """The stripe SDK's types, generated from Stripe's API description, are the independent witness:
    a Checkout Session has no payment-method details, a Charge has the card's fingerprint and country."""
    session = stripe.checkout.Session.__annotations__
    assert "payment_method_details" not in session and "latest_charge" not in session
    card = stripe.Charge.PaymentMethodDetails.Card.__annotations__
    assert {"fingerprint", "country"} <= set(card)


def test_a_stripe_query_expands_the_charge_and_names_the_cards_fingerprint_and_country(stripe_kit):
    order = shop_order("stripe", currency="CNY")
    stripe_kit.lost(as_checkout(order))

    [event] = stripe_provider(stripe_kit).query(order.order_id)

    assert (event.payer, event.card_country) == stripe_kit.paid_by("query")
    assert event.payer == f"stripe:{stripe_kit.buyer}" and event.card_country == "US"
    [asked] = stripe_kit.server.seen("GET", "/v1/payment_intents/search")
    assert asked.query["expand[]"] == "data.latest_charge"  # one call, as before: no extra request


def test_the_stripe_sdk_reads_the_fakes_expanded_charge_where_the_shop_does(stripe_kit):
    order = shop_order("stripe", currency="CNY")
    stripe_kit.lost(as_checkout(order))
    intent = stripe_kit.server.payment_intents[stripe_kit.payment_intent_of(as_checkout(order))]
    expanded = {**intent, "latest_charge": stripe_kit.server.charge_of(intent)}
    read = stripe.PaymentIntent.construct_from(json.loads(json.dumps(expanded)), stripe_kit.secret_key)
    card = read.latest_charge.payment_method_details.card
    assert (card.fingerprint, card.country) == (stripe_kit.buyer, "US")


@pytest.mark.parametrize(
    ("card", "country"),
    [({}, None), ({"fingerprint": "has space", "country": "USA"}, None), ({"country": "gb"}, "GB")],
    ids=["none", "malformed", "country-only"],
)
def test_a_stripe_charge_without_a_fingerprint_names_its_payment_method(stripe_kit, card, country):
    """Link and other methods carry no card fingerprint: the PaymentMethod's id is what there is."""
    order = shop_order("stripe", currency="CNY")
    stripe_kit.lost(as_checkout(order))
    intent_id = stripe_kit.payment_intent_of(as_checkout(order))
    stripe_kit.server.cards[intent_id] = card

    [event] = stripe_provider(stripe_kit).query(order.order_id)

    method = stripe_kit.server.payment_intents[intent_id]["payment_method"]
    assert method.startswith("pm_") and (event.payer, event.card_country) == (f"stripe:{method}", country)


def test_a_stripe_query_answer_without_the_charge_expanded_names_the_payment_method(stripe_kit):
    order = shop_order("stripe", currency="CNY")
    stripe_kit.lost(as_checkout(order))
    intent = stripe_kit.server.payment_intents[stripe_kit.payment_intent_of(as_checkout(order))]
    answer = {"object": "search_result", "data": [intent], "has_more": False}  # latest_charge: an id
    server = stripe_kit.server
    server.answer = lambda request: (200, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    [event] = stripe_provider(stripe_kit).query(order.order_id)

    assert (event.payer, event.card_country) == (f"stripe:{intent['payment_method']}", None)


def test_a_key_that_may_not_read_charges_still_finds_the_payment_without_its_card(stripe_kit):
    """A restricted key without Charges read is refused the expansion: the search is asked again
    plain, and the payment counts with its PaymentMethod's id as payer."""
    order = shop_order("stripe", currency="CNY")
    stripe_kit.lost(as_checkout(order))
    server, answer = stripe_kit.server, stripe_kit.server.answer
    refused = {
        "error": {
            "type": "invalid_request_error",
            "message": "The provided key does not have the required permissions.",
        }
    }

    def permissions(request):
        if "expand[]" in request.query:
            return 403, {"Content-Type": "application/json"}, json.dumps(refused).encode()
        return answer(request)

    server.answer = permissions

    [event] = stripe_provider(stripe_kit).query(order.order_id)

    intent = server.payment_intents[stripe_kit.payment_intent_of(as_checkout(order))]
    assert (event.payer, event.card_country) == (f"stripe:{intent['payment_method']}", None)
    assert ["expand[]" in r.query for r in server.seen("GET", "/v1/payment_intents/search")] == [True, False]
