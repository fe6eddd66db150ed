"""Learning from disputes (docs/risk.md "Learning from outcomes"), over HTTP on the local runtime: a
buyer's chargeback — the sandbox's `payment.disputed`, Stripe's `charge.dispute.created` (signed by the
kit, its order found through the PaymentIntent at the kit's fake Stripe) — puts the disputed order's
payer, device, e-mail and client address on its shop's learned block lists, once, in one change; the
payer's next paid order there is refunded before delivery. A forged dispute, or one for an order the
shop does not know, changes nothing, and no other shop's lists move."""

import json
import secrets
import threading
import time

from shared.orders import Status
from shared.settings import settings
from tests.support import poll, session_from, stored_order


def new_merchant(shop) -> str:
    """A new merchant's key; its rules are stored and empty (version 1)."""
    from shared.adapters import merchants

    _, key = merchants().create_merchant(f"Disputed {secrets.token_hex(3)}")
    answer = shop.merchant("PUT", "/merchant/risk/rules", key=key, json={"version": 0, "rules": []})
    assert answer.status_code == 200, answer.text
    return key


def rules_of(shop, key: str | None) -> dict:
    answer = shop.merchant("GET", "/merchant/risk/rules", key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def learned(shop, key: str) -> dict[str, list[str]]:
    """The merchant's learned block lists, by kind."""
    return {
        rule["kind"]: rule["values"]
        for rule in rules_of(shop, key)["rules"]
        if rule["id"].startswith("learned-") and rule["action"] == "block"
    }


def placed(shop, product_id: str, email: str, device: str, address: str, provider: str = "sandbox") -> dict:
    answer = shop.checkout(
        product_id, email=email, device=device, provider=provider, via=session_from(address)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def status_of(order: dict) -> Status:
    return stored_order(order["order_id"]).status


def settled(order: dict) -> Status:
    return poll(lambda: (s := status_of(order)) not in (Status.PENDING_PAYMENT, Status.PAID) and s, 15)


def notes(order: dict) -> list[dict]:
    return [e.data for e in stored_order(order["order_id"]).history if e.type == "payment.disputed"]


def sandbox_dispute(shop, order: dict, dispute_id: str, secret: str | None = None):
    """A signed sandbox dispute of the order's payment (as the local sandbox's `dispute` sends it)."""
    [(payment_id, paid)] = shop.runtime.sandbox.payments_for(order["order_id"]).items()
    body = {
        "id": f"evt_{secrets.token_hex(8)}",
        "type": "payment.disputed",
        "data": {
            "order_id": order["order_id"],
            "payment_id": payment_id,
            "amount": paid["amount"],
            "currency": paid["currency"],
            "dispute_id": dispute_id,
            "reason": "fraudulent",
        },
    }
    return shop.callback(body, secret=secret)


def test_a_disputed_orders_buyer_is_blocked_and_their_next_payment_is_refunded(shop):
    key = new_merchant(shop)
    bystander = new_merchant(shop)
    bystander_before, main_before = rules_of(shop, bystander), rules_of(shop, None)
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}" for _ in range(3)], key=key)
    first = placed(shop, product_id, "chargeback@example.com", "d1.disputer", "127.0.8.1")
    assert shop.runtime.sandbox.pay(first["order_id"], first["total"]["amount"], "CNY", payer="disputer")
    assert settled(first) == Status.DELIVERED

    assert shop.runtime.sandbox.dispute(first["order_id"], reason="fraudulent") == 200

    assert learned(shop, key) == {
        "payer": ["sandbox:disputer"],
        "device": ["d1.disputer"],
        "email": ["chargeback@example.com"],
        "client": ["127.0.8.1"],
    }
    [note] = notes(first)
    assert note["reason"] == "fraudulent" and note["blocked"] == ["client", "device", "email", "payer"]
    assert status_of(first) == Status.DELIVERED  # the provider took the money back; the order stays
    # Nobody else's rules moved: another merchant's, and the shop the other tests buy from.
    assert rules_of(shop, bystander) == bystander_before and rules_of(shop, None) == main_before

    # Delivery reads the rules through a per-container cache (PRODUCT_CACHE_SECONDS, docs/risk.md).
    changed_at = time.monotonic()
    poll(lambda: time.monotonic() > changed_at + settings().product_cache_seconds, 10)
    again = placed(shop, product_id, "fresh@example.com", "d1.fresh", "127.0.8.2")
    assert shop.runtime.sandbox.pay(again["order_id"], again["total"]["amount"], "CNY", payer="disputer")
    assert settled(again) in (Status.REFUNDING, Status.REFUNDED)
    decisions = [e.data["risk"] for e in stored_order(again["order_id"]).history if "risk" in e.data]
    assert decisions[-1]["decided_by"] == "learned-payer"


def test_the_same_dispute_many_times_is_one_note_and_one_change(shop):
    key = new_merchant(shop)
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key)
    order = placed(shop, product_id, "twice@example.com", "d1.twice", "127.0.8.3")
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", payer="twice")
    assert settled(order) == Status.DELIVERED
    version = rules_of(shop, key)["version"]

    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(sandbox_dispute(shop, order, "dp_twice").status_code))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sandbox_dispute(shop, order, "dp_twice").status_code == 200  # and once more, later

    assert answers == [200] * 4
    assert len(notes(order)) == 1
    assert rules_of(shop, key)["version"] == version + 1
    assert learned(shop, key)["payer"] == ["sandbox:twice"]


def test_a_forged_dispute_changes_nothing(shop):
    key = new_merchant(shop)
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key)
    order = placed(shop, product_id, "honest@example.com", "d1.honest", "127.0.8.4")
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", payer="honest")
    assert settled(order) == Status.DELIVERED
    before = rules_of(shop, key)

    forged = sandbox_dispute(shop, order, "dp_forged", secret="not-the-sandbox-secret-0123456789")

    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_signature"
    assert rules_of(shop, key) == before and notes(order) == []


def test_a_dispute_for_an_order_the_shop_does_not_know_is_acknowledged_and_changes_nothing(shop):
    from shared.adapters import payment_events
    from shared.store.payment_events import PaymentEventItem

    payment_events()  # the table's name, from the settings
    main_before = rules_of(shop, None)
    body = {
        "id": f"evt_{secrets.token_hex(8)}",
        "type": "payment.disputed",
        "data": {
            "order_id": f"ord_{secrets.token_hex(10)}",
            "payment_id": f"pay_{secrets.token_hex(6)}",
            "amount": 1999,
            "currency": "CNY",
            "dispute_id": "dp_unknown_order",
        },
    }

    answer = shop.callback(body)

    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
    assert rules_of(shop, None) == main_before
    assert PaymentEventItem.count("sandbox#dispute:dp_unknown_order") == 0  # not even recorded


def test_a_stripe_dispute_finds_its_order_through_the_payment_intent(shop, kits):
    stripe = kits["stripe"]
    key = new_merchant(shop)
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key)
    order = placed(
        shop, product_id, "card-thief@example.com", "d1.card-thief", "127.0.8.5", provider="stripe"
    )

    def post(callback):
        return shop.http.post(
            f"{shop.url}/webhooks/stripe", data=callback.body, headers=callback.headers, timeout=30
        )

    assert post(stripe.paid(order)).status_code == 200
    assert settled(order) == Status.DELIVERED
    # The paying callback (checkout.session.completed) names no card: the order's payer is unknown.
    assert stored_order(order["order_id"]).payment.payer is None
    version = rules_of(shop, key)["version"]

    forged = post(stripe.tampered(stripe.disputed(order)))
    assert forged.status_code == 400 and notes(order) == [] and rules_of(shop, key)["version"] == version

    stripe.server.fail_next(2, status=503)  # Stripe's API down while asked which order (and its retry)
    unanswered = post(stripe.disputed(order))
    assert unanswered.status_code == 503, unanswered.text  # so Stripe sends the event again
    assert notes(order) == [] and rules_of(shop, key)["version"] == version

    disputed = post(stripe.disputed(order))  # Stripe's next attempt
    assert disputed.status_code == 200 and json.loads(disputed.content)["outcome"] == "disputed"
    again = post(stripe.disputed(order))  # Stripe's retry of the same event
    assert again.status_code == 200 and json.loads(again.content)["outcome"] == "duplicate"

    assert learned(shop, key) == {
        "payer": [f"stripe:{stripe.buyer}"],  # the disputed Charge's card, read with the PaymentIntent
        "device": ["d1.card-thief"],
        "email": ["card-thief@example.com"],
        "client": ["127.0.8.5"],
    }
    assert rules_of(shop, key)["version"] == version + 1
    [note] = notes(order)
    assert note["provider"] == "stripe" and note["dispute_id"].startswith("dp_")
    assert note["payment_id"] == stripe.payment_intent_of(order)


def test_a_refund_as_fraud_blocks_the_device_and_client_too(shop):
    key = new_merchant(shop)
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key)
    order = placed(shop, product_id, "fraud@example.com", "d1.fraud", "127.0.8.6")
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", payer="fraud")
    assert settled(order) == Status.DELIVERED

    refunded = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/refund", key=key, json={"fraud": True}
    )

    assert refunded.status_code in (200, 202), refunded.text
    assert learned(shop, key) == {
        "payer": ["sandbox:fraud"],
        "device": ["d1.fraud"],
        "email": ["fraud@example.com"],
        "client": ["127.0.8.6"],
    }
