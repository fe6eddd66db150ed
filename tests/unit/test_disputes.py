"""Disputes (chargebacks), in memory: how the sandbox's and Stripe's dispute callbacks are read (Stripe's
names its order only through the PaymentIntent, asked of a stub Stripe here), and what a dispute does
(shared/disputes.py): one `payment.disputed` note and one block of the order's payer, device, e-mail
and client at its shop, however often it arrives; nothing for an order the shop does not know."""

import io
import json
from typing import Any

import pytest
import urllib3

from shared.disputes import apply_dispute, blocked_values
from shared.errors import BadInput, InvalidSignature, ProviderDown
from shared.money import Money
from shared.orders import Order, Payment, Status
from shared.payments import PaymentEvent
from shared.providers.config import StripeConfig
from shared.providers.sandbox import parse_sandbox_event
from shared.providers.stripe import StripeProvider
from shared.settlement import Outcome
from tests.fakes import FakePorts, fake_ports, history, stored
from tests.providers.stripe import stripe_signature
from tests.support import event as load_event

WEBHOOK_SECRET = "whsec_unit_5b8e1f0c7a2d4e6f9a3b"
TEST_KEY = "sk_test_unit_51QhTyxLkdIwHu7ix0aB1cD2e"
NOW = 1_795_492_800
ORDER = "ord_4f1c2a9be07d3c5a8e61"
INTENT = "pi_3QhTyxLkdIwHu7ix1B2c3D4e"
CHARGE = "ch_3QhTyxLkdIwHu7ix1Xy2Zw3v"
DISPUTE = "dp_1QhX4qLkdIwHu7ixVb8nM2kP"


# ---------- the sandbox's dispute callback ----------


def test_a_sandbox_dispute_is_an_event_of_the_dispute_not_of_the_callback():
    body = load_event("sandbox_payment_disputed")
    event = parse_sandbox_event(json.dumps(body).encode())
    assert (event.type, event.event_id, event.dispute_id, event.reason) == (
        "payment.disputed",
        "dispute:dp_fixture",
        "dp_fixture",
        "fraudulent",
    )
    assert (event.order_id, event.payment_id, event.amount) == (
        "ord_fixture",
        "pay_fixture",
        Money(amount=1999, currency="CNY"),
    )
    assert event.payer == "sandbox:stolen-account" and event.card_country is None
    again = parse_sandbox_event(json.dumps({**body, "id": "evt_another"}).encode())
    assert again.event_id == event.event_id  # the same dispute, sent in another callback


def test_a_sandbox_dispute_without_its_id_is_refused():
    body = load_event("sandbox_payment_disputed")
    del body["data"]["dispute_id"]
    with pytest.raises(BadInput):
        parse_sandbox_event(json.dumps(body).encode())


# ---------- Stripe's charge.dispute.created ----------


class StubStripe:
    """Answers GET /v1/payment_intents/<id> with `intent` (or `status`), and records what was asked."""

    def __init__(self, intent: dict[str, Any] | None, status: int = 200, refuse_expand: bool = False) -> None:
        self.intent, self.status, self.refuse_expand = intent, status, refuse_expand
        self.asked: list[str] = []

    def request(self, method: str, url: str, **_: Any) -> urllib3.HTTPResponse:
        self.asked.append(f"{method} {url}")
        status, answer = self.status, self.intent
        if self.refuse_expand and "expand" in url:
            status, answer = 403, {"error": {"type": "invalid_request_error", "message": "no Charges read"}}
        elif isinstance(answer, dict) and "expand" not in url and isinstance(answer["latest_charge"], dict):
            answer = {**answer, "latest_charge": answer["latest_charge"]["id"]}
        return urllib3.HTTPResponse(
            body=io.BytesIO(json.dumps(answer).encode()),
            status=status,
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )


def an_intent(metadata: dict[str, str] | None = None, charge: str = CHARGE) -> dict[str, Any]:
    return {
        "id": INTENT,
        "object": "payment_intent",
        "status": "succeeded",
        "amount_received": 1999,
        "currency": "cny",
        "metadata": {"order_id": ORDER} if metadata is None else metadata,
        "payment_method": "pm_1QhTywLkdIwHu7ixQw3eRt5y",
        "latest_charge": {
            "id": charge,
            "object": "charge",
            "payment_method_details": {
                "type": "card",
                "card": {"fingerprint": "Xt5EWLLDS7FJjR1c", "country": "US"},
            },
        },
    }


def stripe_with(stub: StubStripe) -> StripeProvider:
    config = StripeConfig(secret_key=TEST_KEY, webhook_secret=WEBHOOK_SECRET, api_url="http://stripe.test")
    return StripeProvider(config, "https://shop.example.com/webhooks/stripe", http=stub)  # type: ignore[arg-type]


def dispute_body(**changes: Any) -> bytes:
    event = load_event("stripe_charge_dispute_created")
    event["data"]["object"].update(changes)
    return json.dumps(event).encode()


def received(stub: StubStripe, body: bytes, secret: str = WEBHOOK_SECRET) -> list[PaymentEvent]:
    headers = {"stripe-signature": stripe_signature(secret, body, NOW)}
    return stripe_with(stub).verify_callback(headers, body, now=NOW)


def test_a_stripe_dispute_finds_its_order_through_the_payment_intents_metadata():
    stub = StubStripe(an_intent())
    [event] = received(stub, dispute_body())
    assert event == PaymentEvent(
        provider="stripe",
        event_id=f"dispute:{DISPUTE}",
        type="payment.disputed",
        order_id=ORDER,
        payment_id=INTENT,
        amount=Money(amount=1999, currency="CNY"),
        dispute_id=DISPUTE,
        reason="fraudulent",
        payer="stripe:Xt5EWLLDS7FJjR1c",  # the disputed card, from the Charge in the same answer
    )
    assert stub.asked == [f"GET http://stripe.test/v1/payment_intents/{INTENT}?expand%5B%5D=latest_charge"]


def test_without_charges_read_the_dispute_still_finds_its_order_without_the_card():
    stub = StubStripe(an_intent(), refuse_expand=True)
    [event] = received(stub, dispute_body())
    assert event.order_id == ORDER and event.payer == "stripe:pm_1QhTywLkdIwHu7ixQw3eRt5y"
    assert len(stub.asked) == 2


def test_the_card_of_another_charge_than_the_disputed_one_is_not_taken_for_the_payer():
    [event] = received(StubStripe(an_intent(charge="ch_someotherattempt")), dispute_body())
    assert event.payer == "stripe:pm_1QhTywLkdIwHu7ixQw3eRt5y"


def test_a_reason_stripe_adds_later_is_no_reason_to_refuse_the_dispute():
    [event] = received(StubStripe(an_intent()), dispute_body(reason="Some New Reason!"))
    assert event.reason is None and event.order_id == ORDER


def test_a_dispute_of_a_payment_no_checkout_of_the_shop_made_is_nothing():
    assert received(StubStripe(an_intent(metadata={})), dispute_body()) == []
    no_intent = StubStripe(an_intent())
    assert received(no_intent, dispute_body(payment_intent=None)) == []
    assert no_intent.asked == []  # a bare Charge: nothing to ask


def test_a_forged_stripe_dispute_is_refused_before_anything_is_asked():
    stub = StubStripe(an_intent())
    with pytest.raises(InvalidSignature):
        received(stub, dispute_body(), secret="whsec_someone_elses_secret_0000")
    assert stub.asked == []


def test_stripe_not_answering_about_a_dispute_is_503_so_stripe_sends_it_again():
    with pytest.raises(ProviderDown) as refused:
        received(StubStripe(None, status=503), dispute_body())
    assert refused.value.status == 503


def test_stripe_answering_about_another_payment_is_not_believed():
    with pytest.raises(ProviderDown):
        received(StubStripe({**an_intent(), "id": "pi_another"}), dispute_body())


# ---------- what a dispute does ----------


class Blocks:
    """The risk rules store's add_blocked, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str | None], str, str]] = []

    def __call__(self, merchant_id: str, values: Any, currency: str, why: str) -> None:
        self.calls.append((merchant_id, dict(values), currency, why))


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports(providers=("sandbox", "stripe"))


def delivered(fakes: FakePorts, **where: str | None) -> Order:
    order = fakes.add_order(fakes.add_product(codes=3), Status.DELIVERED, email="Thief@Example.com")
    assert order.payment is not None
    payment = order.payment.model_copy(update={"payer": "sandbox:thief"})
    changed = order.model_copy(update={"payment": payment, **where})
    fakes.orders._orders[order.order_id] = changed  # as checkout and the payment stored them
    return changed


def dispute_of(order: Order, dispute_id: str = "dp_1", payment_id: str | None = None) -> PaymentEvent:
    assert order.payment is not None
    return PaymentEvent(
        provider=order.provider,
        event_id=f"dispute:{dispute_id}",
        type="payment.disputed",
        order_id=order.order_id,
        payment_id=payment_id or order.payment.payment_id,
        amount=order.total,
        dispute_id=dispute_id,
        reason="fraudulent",
    )


def test_a_dispute_is_noted_once_and_blocks_the_orders_payer_device_email_and_client(fakes):
    order = delivered(fakes, device="d1.abc", client="203.0.113.7")
    blocks = Blocks()

    outcome = apply_dispute(dispute_of(order), fakes, blocks, fakes.clock())

    assert outcome == Outcome.DISPUTED
    assert blocks.calls == [
        (
            order.merchant_id,
            {
                "payer": "sandbox:thief",
                "device": "d1.abc",
                "email": "thief@example.com",
                "client": "203.0.113.7",
            },
            "CNY",
            "dispute",
        )
    ]
    [note] = [e for e in stored(fakes, order).history if e.type == "payment.disputed"]
    assert note.data["dispute_id"] == "dp_1" and note.data["blocked"] == [
        "client",
        "device",
        "email",
        "payer",
    ]
    assert "thief" not in json.dumps(note.data).lower()  # the kinds, never the values
    assert stored(fakes, order).status == Status.DELIVERED


def test_the_same_dispute_again_does_nothing_more(fakes):
    order = delivered(fakes)
    blocks = Blocks()
    apply_dispute(dispute_of(order), fakes, blocks, fakes.clock())

    assert apply_dispute(dispute_of(order), fakes, blocks, fakes.clock()) == Outcome.DUPLICATE
    assert len(blocks.calls) == 1
    assert history(fakes, order).count("payment.disputed") == 1


def test_a_dispute_retried_after_a_crash_before_it_was_done_is_noted_once(fakes):
    order = delivered(fakes)
    event = dispute_of(order)
    fakes.events.record(event)  # the first delivery recorded it and noted it, then crashed
    fakes.orders.note(stored(fakes, order), "payment.disputed", fakes.clock(), {"dispute_id": "dp_1"})
    blocks = Blocks()

    assert apply_dispute(event, fakes, blocks, fakes.clock()) == Outcome.DISPUTED

    assert history(fakes, order).count("payment.disputed") == 1
    assert len(blocks.calls) == 1  # the block it had not made yet (the store makes it once)


def test_a_dispute_for_an_order_the_shop_does_not_know_changes_nothing(fakes):
    order = delivered(fakes)
    unknown = dispute_of(order).model_copy(update={"order_id": "ord_nosuchorder"})
    other_provider = dispute_of(order).model_copy(update={"provider": "stripe"})
    blocks = Blocks()

    assert apply_dispute(unknown, fakes, blocks, fakes.clock()) == Outcome.IGNORED
    assert apply_dispute(other_provider, fakes, blocks, fakes.clock()) == Outcome.IGNORED

    assert blocks.calls == [] and not fakes.events.applied(unknown)
    assert "payment.disputed" not in history(fakes, order)


def test_a_dispute_of_a_second_payment_is_noted_and_blocks_nothing(fakes):
    order = delivered(fakes)
    blocks = Blocks()

    outcome = apply_dispute(dispute_of(order, payment_id="pay_second"), fakes, blocks, fakes.clock())

    assert outcome == Outcome.DISPUTED and blocks.calls == []
    [note] = [e for e in stored(fakes, order).history if e.type == "payment.disputed"]
    assert note.data["payment_id"] == "pay_second" and note.data["blocked"] == []


def test_what_is_blocked_leaves_out_what_is_unknown_or_no_identifier():
    order = Order.model_construct(
        email="buyer@example.com",
        payment=Payment(
            provider="stripe", payment_id="pi_1", event_id="evt_1", amount=Money(amount=1, currency="CNY")
        ),
        device=None,
        client="not an address",
    )
    assert blocked_values(order) == {
        "payer": None,
        "device": None,
        "email": "buyer@example.com",
        "client": None,
    }
    assert blocked_values(order, payer="stripe:fp1")["payer"] == "stripe:fp1"


def test_rules_that_cannot_take_learned_blocks_still_note_the_dispute(fakes):
    order = delivered(fakes)

    def refused(*_: Any) -> None:
        raise ValueError("rule 'learned-payer' is kept for learned blocks but is not a payer block list")

    assert apply_dispute(dispute_of(order), fakes, refused, fakes.clock()) == Outcome.DISPUTED
    [note] = [e for e in stored(fakes, order).history if e.type == "payment.disputed"]
    assert note.data["blocked"] == []
