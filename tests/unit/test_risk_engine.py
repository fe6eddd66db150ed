"""The risk engine's decision (shared/risk/engine.py): every rule kind with every action, dry-run,
the precedence of allow lists, blocks, reviews and scores, and a record that explains itself
without a personal value in it."""

import pytest

from shared.money import Money
from shared.risk.engine import Decision, decide
from shared.risk.rules import parse_rules
from shared.risk.signals import Fingerprints, History, Signals, Stage, Velocity

KEY = Fingerprints.for_merchant("a-server-secret-of-some-length", "mer_1")
EMAIL, CLIENT, DEVICE, PAYER = (
    "buyer@example.org",
    "198.51.100.7",
    "dev-7f3a",
    "wechatpay:oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
)


def order(**changes) -> Signals:
    values = {
        "email": EMAIL,
        "client": CLIENT,
        "device": DEVICE,
        "payer": PAYER,
        "card_country": "CN",
        "amount": Money(amount=10_000, currency="CNY"),
        "quantity": 1,
        "product_id": "prd_1",
        "history": History(paid_orders=3),
    }
    return Signals(**{**values, **changes})


def counted(kind: str, value: str, window: int, orders: int, amount: int = 0) -> dict:
    return {(kind, value, window): Velocity(orders=orders, amount=amount)}


def decision(rules: list[dict], signals: Signals, stage: Stage = "payment", **document) -> Decision:
    settings = {"review_at": None, "block_at": None, **document}  # scores out of the way unless asked
    return decide(parse_rules({**settings, "rules": rules}), signals, stage, KEY)


def rule(type_: str, action: str, **settings) -> dict:
    return {"id": "r", "type": type_, "action": action, "score": 10, **settings}


def case_rule(settings: dict, action: str, **more) -> dict:
    """A rule of the FIRES table with an action (and more settings)."""
    return {**rule(settings["type"], action), **settings, **more}


# (rule settings, an order it fires on, an order it stays quiet on)
CNY = {"currency": "CNY"}
FIRES = {
    "list email": (
        {"type": "list", "kind": "email", "values": ["Buyer@Example.org"]},
        order(),
        order(email="other@example.org"),
    ),
    "list email_domain": (
        {"type": "list", "kind": "email_domain", "values": ["example.org"]},
        order(email="x@shop.example.org"),
        order(email="x@example.com"),
    ),
    "list client": (
        {"type": "list", "kind": "client", "values": ["198.51.100.0/24"]},
        order(),
        order(client="203.0.113.1"),
    ),
    "list device": (
        {"type": "list", "kind": "device", "values": [DEVICE]},
        order(),
        order(device="dev-other"),
    ),
    "list payer": (
        {"type": "list", "kind": "payer", "values": [PAYER]},
        order(),
        order(payer="wechatpay:other"),
    ),
    "list card_country": (
        {"type": "list", "kind": "card_country", "values": ["cn"]},
        order(),
        order(card_country="US"),
    ),
    "velocity orders": (
        {"type": "velocity", "kind": "device", "window": 60, "max_orders": 5},
        order(velocity=counted("device", DEVICE, 60, 6)),
        order(velocity=counted("device", DEVICE, 60, 5)),
    ),
    "velocity amount": (
        {"type": "velocity", "kind": "payer", "window": 1440, "max_amount": {"amount": 50_000, **CNY}},
        order(velocity=counted("payer", PAYER, 1440, 2, 50_001)),
        order(velocity=counted("payer", PAYER, 1440, 9, 50_000)),
    ),
    "amount": (
        {"type": "amount", "above": {"amount": 9_999, **CNY}},
        order(),
        order(amount=Money(amount=9_999, currency="CNY")),
    ),
    "quantity": ({"type": "quantity", "above": 20}, order(quantity=21), order(quantity=20)),
    "first_order": (
        {"type": "first_order", "above": {"amount": 5_000, **CNY}},
        order(history=History(paid_orders=0)),
        order(history=History(paid_orders=1)),
    ),
    "disposable_email": ({"type": "disposable_email"}, order(email="a@yopmail.com"), order()),
    "past_refunds": (
        {"type": "past_refunds", "at_least": 2},
        order(history=History(refunds=2)),
        order(history=History(refunds=1)),
    ),
}


@pytest.mark.parametrize("action", ["allow", "review", "block"])
@pytest.mark.parametrize("case", sorted(FIRES))
def test_every_rule_kind_fires_with_every_action_and_stays_quiet_below_its_threshold(case, action):
    settings, firing, quiet = FIRES[case]
    fired = decision([case_rule(settings, action)], firing)
    assert fired.action == action
    assert [(hit.rule_id, hit.action, hit.score, hit.dry_run) for hit in fired.hits] == [
        ("r", action, 10, False)
    ]
    assert fired.hits[0].type == settings["type"] and fired.hits[0].reason
    assert fired.score == 10
    assert fired.decided_by == (
        "r" if action != "allow" or settings["type"] == "list" and settings["kind"] == "payer" else None
    )
    calm = decision([case_rule(settings, action)], quiet)
    assert calm.action == "allow" and calm.hits == () and calm.skipped == () and calm.score == 0
    assert calm.reason == "no rule fired"


def test_reasons_say_why_in_words():
    reasons = {
        case: decision([case_rule(settings, "review")], firing).hits[0].reason
        for case, (settings, firing, _) in FIRES.items()
    }
    assert reasons["list payer"] == "the payer is on review list 'r'"
    assert reasons["list email_domain"] == "the e-mail's domain is on review list 'r'"
    assert reasons["velocity orders"] == "6 orders from this device in the last hour (more than 5)"
    assert (
        reasons["velocity amount"] == "500.01 CNY from this payer in the last 24 hours (more than 500.00 CNY)"
    )
    assert reasons["amount"] == "an order of 100.00 CNY (above 99.99 CNY)"
    assert reasons["quantity"] == "21 units in one order (above 20)"
    assert reasons["first_order"] == "a first order at this shop of 100.00 CNY (above 50.00 CNY)"
    assert reasons["disposable_email"] == "the e-mail's domain is a throw-away mail service"
    assert reasons["past_refunds"] == "2 earlier orders at this shop refunded (at least 2)"


def test_rules_lacking_their_signal_are_skipped_and_say_what_they_lacked():
    rules = [
        rule("list", "block", id="payers", kind="payer", values=[PAYER]),
        rule("list", "block", id="countries", kind="card_country", values=["CN"]),
        rule("velocity", "block", id="devices", kind="device", window=60, max_orders=1),
        rule("velocity", "block", id="clients", kind="client", window=10, max_orders=1),
        rule("amount", "block", id="usd", above={"amount": 1, "currency": "USD"}),
        rule("first_order", "block", id="usd-first", above={"amount": 1, "currency": "USD"}),
        rule(
            "velocity",
            "block",
            id="usd-spend",
            kind="payer",
            window=10,
            max_amount={"amount": 1, "currency": "USD"},
        ),
    ]
    at_checkout = decision(rules, order(payer=None, card_country=None, device=None), "checkout")
    assert at_checkout.action == "allow" and at_checkout.hits == ()
    assert {skip.rule_id: skip.reason for skip in at_checkout.skipped} == {
        "payers": "the payer is known only at payment",
        "countries": "the card's country is known only at payment",
        "devices": "the order has no device",
        "clients": "no count of orders from this client address in the last 10 minutes",
        "usd": "its threshold is in USD, the order in CNY",
        "usd-first": "its threshold is in USD, the order in CNY",
        "usd-spend": "the payer is known only at payment",
    }
    at_payment = decision(
        rules[-1:], order(payer="stripe:fp1", velocity=counted("payer", "stripe:fp1", 10, 1, 1))
    )
    assert at_payment.skipped[0].reason == "its amount is in USD, the order in CNY"
    both = rule(
        "velocity",
        "block",
        kind="payer",
        window=10,
        max_orders=3,
        max_amount={"amount": 1, "currency": "USD"},
    )
    counts = order(velocity=counted("payer", PAYER, 10, 4, 99))
    assert decision([both], counts).action == "block"  # the orders still count; the amount is not compared


def test_a_dry_run_rule_is_recorded_and_changes_nothing():
    rules = [
        rule("quantity", "block", id="bulk-try", above=1, dry_run=True, score=80),
        rule("amount", "review", id="big", above={"amount": 1, "currency": "CNY"}, score=30),
    ]
    made = decision(rules, order(quantity=2), review_at=60, block_at=90)
    assert made.action == "review" and made.score == 30 and made.decided_by == "big"
    assert [(hit.rule_id, hit.dry_run) for hit in made.hits] == [("bulk-try", True), ("big", False)]
    assert made.dry_run_action == "block" and made.dry_run_score == 100  # what going live would do
    quiet = decision(rules[:1], order(quantity=2))
    assert quiet.action == "allow" and quiet.reason == "no rule fired" and quiet.dry_run_action == "block"


def test_a_payers_allow_list_decides_allow_whatever_else_fired():
    rules = [
        rule("list", "block", id="bad-devices", kind="device", values=[DEVICE], score=100),
        rule("list", "allow", id="vip", kind="payer", values=[PAYER], score=0),
    ]
    made = decision(rules, order(), block_at=90)
    assert made.action == "allow" and made.decided_by == "vip" and made.score == 100
    assert made.reason == "the payer is on allow list 'vip'"
    assert [hit.rule_id for hit in made.hits] == ["bad-devices", "vip"]  # what it overrode stays on record
    assert decision(rules, order(payer="wechatpay:someone-else")).action == "block"
    dry = decision([rules[0], {**rules[1], "dry_run": True}], order())
    assert dry.action == "block" and dry.dry_run_action == "allow"


@pytest.mark.parametrize("kind", ["email", "email_domain", "client", "device", "card_country"])
def test_an_allow_list_on_a_weak_identifier_waives_a_review_but_never_a_block(kind):
    value = {
        "email": EMAIL,
        "email_domain": "example.org",
        "client": CLIENT,
        "device": DEVICE,
        "card_country": "CN",
    }
    allow = rule("list", "allow", id="known", kind=kind, values=[value[kind]], score=0)
    review = rule("quantity", "review", id="bulk", above=1, score=0)
    block = rule("amount", "block", id="big", above={"amount": 1, "currency": "CNY"}, score=0)
    waived = decision([review, allow], order(quantity=2))
    assert waived.action == "allow" and waived.decided_by == "known"
    assert waived.reason.endswith(
        "which waives the review (rule 'bulk' reviews: 2 units in one order (above 1))"
    )
    assert decision([review, allow, block], order(quantity=2)).action == "block"
    scored = decision(
        [{**review, "action": "allow", "score": 70}, allow], order(quantity=2), review_at=60, block_at=None
    )
    assert scored.action == "allow"  # a review by score is waived too
    assert (
        decision([{**review, "action": "allow", "score": 95}, allow], order(quantity=2), block_at=90).action
        == "block"
    )


def test_block_beats_review_beats_allow_and_scores_add_up_to_thresholds():
    quantity = rule("quantity", "allow", id="bulk", above=1, score=35)
    amount = rule("amount", "allow", id="big", above={"amount": 1, "currency": "CNY"}, score=35)
    disposable = rule("disposable_email", "allow", id="throwaway", score=35)
    thresholds = {"review_at": 60, "block_at": 90}
    assert decision([quantity], order(quantity=2), **thresholds).action == "allow"
    two = decision([quantity, amount], order(quantity=2), **thresholds)
    assert (two.action, two.score, two.decided_by) == ("review", 70, None)
    assert two.reason == "score 70 is at or above review_at 60"
    three = decision([quantity, amount, disposable], order(quantity=2, email="a@yopmail.com"), **thresholds)
    assert (three.action, three.score) == ("block", 100)  # 105, at most 100
    assert three.reason == "score 100 is at or above block_at 90"
    assert (
        decision([quantity, amount, disposable], order(quantity=2, email="a@yopmail.com")).action == "allow"
    )
    mixed = [
        {**quantity, "action": "review"},
        {**amount, "action": "block"},
        {**disposable, "action": "allow"},
    ]
    made = decision(mixed, order(quantity=2, email="a@yopmail.com"))
    assert made.action == "block" and made.decided_by == "big"
    assert made.reason == "rule 'big' blocks: an order of 100.00 CNY (above 0.01 CNY)"
    assert decision(mixed[:1] + mixed[2:], order(quantity=2, email="a@yopmail.com")).action == "review"


def test_the_same_inputs_give_the_same_decision_with_hits_in_the_documents_order():
    rules = [case_rule(settings, "review", id=f"r{n}") for n, (settings, _, _) in enumerate(FIRES.values())]
    everything = order(
        email="buyer@yopmail.com",
        quantity=21,
        history=History(paid_orders=0, refunds=2),
        velocity={**counted("device", DEVICE, 60, 6), **counted("payer", PAYER, 1440, 2, 50_001)},
    )
    first, second = decision(rules, everything), decision(rules, everything)
    assert first == second
    assert [hit.rule_id for hit in first.hits] == sorted(
        (hit.rule_id for hit in first.hits), key=lambda i: int(i[1:])
    )
    assert first.rules_version == 0 and first.stage == "payment"


def test_a_decision_as_json_names_no_personal_value():
    rules = [case_rule(settings, "review", id=f"r{n}") for n, (settings, _, _) in enumerate(FIRES.values())]
    everything = order(
        email="Buyer@Example.org",
        velocity={**counted("device", DEVICE, 60, 6), **counted("payer", PAYER, 1440, 2, 50_001)},
        history=History(paid_orders=0, refunds=2),
    )
    made = decision(rules, everything)
    assert len(made.hits) >= 8
    text = made.model_dump_json()
    for personal in (EMAIL, "example.org", CLIENT, "198.51.100", DEVICE, PAYER, "oUpF8uMuAJO"):
        assert personal not in text
    assert made.signals.email == KEY.of("email", EMAIL) and made.signals.device == KEY.of("device", DEVICE)
    assert Decision.model_validate_json(text) == made  # the history entry reads back as it was
