"""The review queue through the local runtime (docs/risk.md "Reviews"): `GET /merchant/reviews` lists
the merchant's orders IN_REVIEW, the longest waiting first; approve delivers the code, reject refunds
the payment; either sent again answers as the first did; another merchant's order is 404 like a
missing one. Past its product's deadline a risk review follows the product's policy (refund or
deliver) in reconciliation, once however many runs race; an order held for a person is never
decided by the clock. Orders are put in review through the store (as the risk engine's wiring will)."""

import threading
from datetime import datetime, timedelta

import pytest

from functions.reconcile.reviews import expire_reviews
from shared import adapters
from shared.adapters import merchants as merchant_store
from shared.adapters import orders
from shared.orders import Status, utcnow
from shared.settings import settings
from tests.faults_aws import lost_answer, on_table
from tests.support import in_review, new_codes, poll, stored_order

REDRIVE = timedelta(seconds=120)


@pytest.fixture
def merchant(runtime) -> tuple[str, str]:
    return merchant_store().create_merchant("Reviews test")


def reviewed(shop, key: str, codes: list[str] | None = None, held: bool = False, **product) -> dict:
    """A bought order of a new product of the merchant's, paid and put in review."""
    product_id = shop.new_product(codes or new_codes(1, "REVIEWED"), key=key, **product)
    order = shop.buy(product_id)
    in_review(shop, order, held=held)
    return order


def reviews(shop, key: str) -> list[dict]:
    response = shop.merchant("GET", "/merchant/reviews", key=key)
    assert response.status_code == 200, response.text
    return response.json()["reviews"]


def decide(shop, key: str, order_id: str, decision: str, **kwargs):
    return shop.merchant("POST", f"/merchant/reviews/{order_id}/{decision}", key=key, **kwargs)


def payment_of(order_id: str) -> str:
    payment = stored_order(order_id).payment
    assert payment is not None
    return payment.payment_id


def test_the_queue_lists_the_merchants_orders_in_review_longest_waiting_first(shop, merchant):
    _, key = merchant
    first = reviewed(shop, key)
    held = reviewed(shop, key, held=True)
    last = reviewed(shop, key, review_deadline_minutes=90)
    other = reviewed(shop, merchant_store().create_merchant("Someone else")[1])

    listed = reviews(shop, key)

    assert [r["order_id"] for r in listed] == [first["order_id"], held["order_id"], last["order_id"]]
    assert other["order_id"] not in str(listed)
    risk, kept, later = listed
    assert (risk["status"], risk["why"], kept["why"], kept["due_at"]) == ("IN_REVIEW", "risk", "held", None)
    assert risk["decision"]["risk"]["decided_by"] == "first-order-large"  # why the engine asked
    waits = datetime.fromisoformat(later["due_at"]) - datetime.fromisoformat(later["entered_at"])
    assert timedelta(0) <= timedelta(minutes=90) - waits < timedelta(seconds=1)  # due in whole seconds
    assert risk["total"] == first["total"] and risk["email"] == "buyer@example.com"


def test_approve_delivers_the_code_and_approving_again_answers_the_same(shop, merchant):
    _, key = merchant
    order = reviewed(shop, key, codes=["APPROVED-CODE-1"])

    response = decide(shop, key, order["order_id"], "approve")

    assert response.status_code == 200, response.text
    assert response.json() == {"order_id": order["order_id"], "decision": "approved", "status": "PAID",
                               "refund_id": None}  # fmt: skip
    delivered = shop.wait_for(order, "DELIVERED")
    assert [item["code"] for item in delivered["items"]] == ["APPROVED-CODE-1"]
    again = decide(shop, key, order["order_id"], "approve")  # its answer was lost: sent again
    assert again.status_code == 200 and again.json()["decision"] == "approved", again.text
    assert again.json()["status"] == "DELIVERED"
    history = [e.type for e in stored_order(order["order_id"]).history]
    assert history.count("review.released") == 1 and history.count("order.delivered") == 1
    assert order["order_id"] not in str(reviews(shop, key))
    rejected = decide(shop, key, order["order_id"], "reject")  # decided: no turning it into a refund
    assert (rejected.status_code, rejected.json()["error"]["code"]) == (409, "not_in_review")


def test_reject_refunds_the_payment_and_rejecting_again_answers_the_same(shop, merchant):
    _, key = merchant
    order = reviewed(shop, key, codes=["REJECTED-CODE-1"])
    product_id = stored_order(order["order_id"]).product_id

    response = decide(shop, key, order["order_id"], "reject", json={"reason": "stolen card, says the bank"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["decision"], body["refund_id"]) == ("rejected", f"rf_{order['order_id']}")
    assert body["status"] in ("REFUNDING", "REFUNDED")
    (refund,) = shop.runtime.sandbox.refunds_for(payment_of(order["order_id"]))
    assert refund["amount"] == order["total"]["amount"]
    assert shop.stock(product_id, key=key)["available"] == 1  # its reserved code is back in stock
    again = decide(shop, key, order["order_id"], "reject", json={"reason": "stolen card, says the bank"})
    assert again.status_code == 200 and again.json()["decision"] == "rejected", again.text
    assert len(shop.runtime.sandbox.refunds_for(payment_of(order["order_id"]))) == 1  # refunded once
    stored = stored_order(order["order_id"])
    requested = [e for e in stored.history if e.type == "refund.requested"]
    assert len(requested) == 1 and requested[0].data["reason"] == "stolen card, says the bank"
    approved = decide(shop, key, order["order_id"], "approve")
    assert (approved.status_code, approved.json()["error"]["code"]) == (409, "not_in_review")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_whose_write_lost_its_answer_still_answers_200_and_acts_once(shop, merchant, decision):
    """The SDK sends the order's conditional UpdateItem again after its first answer is lost: the retry
    is refused (the order left review), and the decision finds its own write in the history."""
    _, key = merchant
    order = reviewed(shop, key)
    when = on_table(settings().orders_table, order_id=order["order_id"])
    with lost_answer("UpdateItem", when) as fault:
        response = decide(shop, key, order["order_id"], decision, json={})
    assert fault.hits == 1 and fault.seen >= 2
    assert response.status_code == 200, response.text
    history = [e.type for e in stored_order(order["order_id"]).history]
    if decision == "approve":
        shop.wait_for(order, "DELIVERED")
        assert history.count("review.released") == 1
    else:
        assert history.count("refund.requested") == 1
        assert len(shop.runtime.sandbox.refunds_for(payment_of(order["order_id"]))) == 1


def test_an_order_not_in_review_is_409_and_another_merchants_is_404_like_a_missing_one(shop, merchant):
    _, key = merchant
    _, other_key = merchant_store().create_merchant("Not the owner")
    order = reviewed(shop, key)
    for decision in ("approve", "reject"):
        theirs = decide(shop, other_key, order["order_id"], decision, json={})
        missing = decide(shop, other_key, "ord_" + "0" * 20, decision, json={})
        assert theirs.status_code == 404, theirs.text
        assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())
    assert stored_order(order["order_id"]).status == Status.IN_REVIEW
    assert reviews(shop, other_key) == []

    product_id = shop.new_product(new_codes(1), key=key)
    unpaid = shop.buy(product_id)
    for decision in ("approve", "reject"):
        response = decide(shop, key, unpaid["order_id"], decision, json={})
        assert (response.status_code, response.json()["error"]["code"]) == (409, "not_in_review")
    assert stored_order(unpaid["order_id"]).status == Status.PENDING_PAYMENT


def test_approve_and_reject_at_once_decide_the_order_one_way(shop, merchant):
    _, key = merchant
    order = reviewed(shop, key)
    answers: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def send(decision: str) -> None:
        barrier.wait()
        answers[decision] = decide(shop, key, order["order_id"], decision, json={}).status_code

    threads = [threading.Thread(target=send, args=(d,)) for d in ("approve", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) == [200, 409], answers
    stored = stored_order(order["order_id"])
    out = [e.type for e in stored.history if e.type in ("review.released", "refund.requested")]
    assert out == (["review.released"] if answers["approve"] == 200 else ["refund.requested"])


# ---------------------------------------------------------------- past the deadline


@pytest.mark.parametrize(("policy", "ends"), [("refund", "REFUNDING"), ("deliver", "PAID")])
def test_a_risk_review_past_its_deadline_follows_the_products_policy(shop, merchant, policy, ends):
    _, key = merchant
    order = reviewed(shop, key, review_deadline_minutes=60, when_review_expires=policy)
    now = utcnow()
    ports = adapters.ports()

    assert order["order_id"] not in expire_reviews(ports, now + timedelta(minutes=30), REDRIVE)
    assert stored_order(order["order_id"]).status == Status.IN_REVIEW

    assert order["order_id"] in expire_reviews(ports, now + timedelta(minutes=61), REDRIVE)

    stored = stored_order(order["order_id"])
    assert stored.status == ends
    assert stored.history[-1].data["by"] == "deadline" and stored.history[-1].data["policy"] == policy
    if policy == "deliver":
        shop.wait_for(order, "DELIVERED")
    else:
        assert shop.stock(stored.product_id, key=key)["available"] == 1
        late = decide(shop, key, order["order_id"], "approve")  # too late: decided by the deadline
        assert (late.status_code, late.json()["error"]["code"]) == (409, "not_in_review")


def test_an_order_held_for_a_person_is_never_decided_by_the_deadline(shop, merchant):
    _, key = merchant
    order = reviewed(shop, key, held=True, review_deadline_minutes=1, when_review_expires="refund")
    before = stored_order(order["order_id"])

    from functions.reconcile.run import reconcile

    report = reconcile(settings(), utcnow() + timedelta(days=3))

    assert order["order_id"] not in report["reviews_expired"]
    after = stored_order(order["order_id"])
    assert (after.status, after.history) == (Status.IN_REVIEW, before.history)
    assert order["order_id"] in [r["order_id"] for r in reviews(shop, key)]  # still its merchant's to decide
    assert decide(shop, key, order["order_id"], "approve").status_code == 200
    shop.wait_for(order, "DELIVERED")


def test_two_runs_at_once_decide_an_expired_review_once(shop, merchant):
    _, key = merchant
    refunded = reviewed(shop, key, review_deadline_minutes=5)
    delivered = reviewed(shop, key, review_deadline_minutes=5, when_review_expires="deliver")
    now = utcnow() + timedelta(minutes=6)
    found: list[list[str]] = []
    barrier = threading.Barrier(2)

    def run(offset: int) -> None:
        ports = adapters.ports()
        barrier.wait()
        found.append(expire_reviews(ports, now + timedelta(seconds=offset), REDRIVE))

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decided = [order_id for run_found in found for order_id in run_found]
    assert sorted(decided).count(refunded["order_id"]) == 1
    assert sorted(decided).count(delivered["order_id"]) == 1
    refund = stored_order(refunded["order_id"])
    assert [e.type for e in refund.history].count("refund.requested") == 1
    shop.wait_for(delivered, "DELIVERED")
    released = stored_order(delivered["order_id"])
    assert [e.type for e in released.history].count("review.released") == 1
    assert poll(lambda: orders().get(delivered["order_id"]).status == Status.DELIVERED)
