"""The issue's scenario on the pure core and an in-memory counter store: a card-testing bot (one
payer, many e-mails and addresses), a reseller bot (one device, many e-mails), a stolen account (a
payer already disputed), a large first order and 50 honest buyers, interleaved over ten minutes,
each order decided at checkout and again at payment as the store would feed the engine. The bots
are reviewed or blocked once past their thresholds, every honest buyer passes, and every decision
that is not `allow` names the rule that made it."""

import heapq
from datetime import UTC, datetime, timedelta

from shared.money import Money
from shared.risk.counters import CounterItem, counter_items, velocity
from shared.risk.defaults import default_rules
from shared.risk.engine import Decision, decide
from shared.risk.rules import RiskRules, with_blocked
from shared.risk.signals import Fingerprints, History, Signals, Stage
from shared.screening import carried, screen_checkout
from tests.unit.test_risk_counters import FakeCounters

SECRET = "a-server-secret-of-some-length"
KEY = Fingerprints.for_merchant(SECRET, "mer_1")
START = datetime(2026, 5, 1, 9, 3, 17, tzinfo=UTC)
STOLEN = "wechatpay:oStolenAccount0000000000001"


class Shop:
    """What checkout and delivery do with the engine (shared/screening.py) over an in-memory store: at
    checkout `screen_checkout` (the identifiers its rules count, written first); at payment the payer
    counted written first with its history, and the checkout's review carried."""

    def __init__(self, rules: RiskRules) -> None:
        self.rules, self.store = rules, FakeCounters()
        self.at_checkout: dict[str, Decision] = {}

    def decide(self, order: Signals, stage: Stage, now: datetime, order_id: str) -> Decision:
        if stage == "checkout":
            made = screen_checkout("mer_1", order_id, order, lambda *_: self.rules, self.store, SECRET, now)  # type: ignore[arg-type]
            self.at_checkout[order_id] = made
            return made
        assert order.payer is not None
        wanted = [item for item in counter_items(self.rules, order, KEY) if item.kind == "payer"]
        payer = wanted[0] if wanted else CounterItem("payer", KEY.of("payer", order.payer), order.payer, ())
        found = self.store.count("mer_1", payer, now, order.amount, "payment", order_id, paid=True)
        known = Signals(
            **order.model_dump(exclude={"velocity", "history"}),
            history=History(paid_orders=max(0, found.get("paid", 0) - 1), refunds=found.get("refunds", 0)),
            velocity=velocity(
                [payer], {payer.subject: found}, now, order.amount, "payment", written_first=True
            ),
        )
        return carried(self.at_checkout.get(order_id), decide(self.rules, known, "payment", KEY))


def buyer(email: str, client: str, device: str | None, payer: str, amount: int, **more) -> dict:
    return {"email": email, "client": client, "device": device, "payer": payer, "amount": amount, **more}


def test_bots_are_stopped_past_their_thresholds_and_every_honest_buyer_gets_through():
    disputed = with_blocked(
        default_rules(), {"payer": STOLEN, "email": "mule@example.net", "device": "dev-mule"}
    )
    shop = Shop(disputed)
    people: dict[str, list[tuple[int, dict]]] = {
        "honest": [],
        "card-tester": [],
        "reseller": [],
        "stolen": [],
        "large": [],
    }
    for n in range(50):
        payer = f"alipay:2088{n:012d}" if n % 2 else f"stripe:fp_honest_{n}"
        people["honest"].append(
            (12 * n, buyer(f"buyer{n}@qq.com", f"203.0.113.{n}", f"dev-h{n}", payer, 3_000 + 500 * (n % 7)))
        )
    for n in range(15):  # one stolen card, a fresh e-mail and address for each try, no device script
        people["card-tester"].append(
            (20 + 30 * n, buyer(f"t{n}@example.com", f"2001:db8:{n}::1", None, "stripe:fp_tested", 1_000))
        )
    for n in range(15):  # one machine buying codes to resell, under new e-mails, from a few addresses
        people["reseller"].append(
            (
                5 + 35 * n,
                buyer(
                    f"r{n}@example.com", f"198.51.100.{n % 3}", "dev-reseller", f"alipay:2099{n:012d}", 2_000
                ),
            )
        )
    people["stolen"].append((200, buyer("new.face@example.org", "192.0.2.77", "dev-s", STOLEN, 9_000)))
    people["large"].append(
        (300, buyer("first.timer@example.org", "192.0.2.88", "dev-l", "alipay:2088999999999999", 80_000))
    )

    events: list[tuple[datetime, int, str, Stage, int, dict]] = []
    for who, orders in people.items():
        for number, (second, details) in enumerate(orders):
            at = START + timedelta(seconds=second)
            heapq.heappush(events, (at, len(events), who, "checkout", number, details))
            heapq.heappush(events, (at + timedelta(seconds=40), len(events), who, "payment", number, details))
    decisions: dict[tuple[str, int], dict[Stage, Decision]] = {}
    while events:
        at, _, who, stage, number, details = heapq.heappop(events)
        if stage == "payment" and decisions[(who, number)]["checkout"].action == "block":
            continue  # refused at checkout: nothing to pay
        order = Signals(
            email=details["email"],
            client=details["client"],
            device=details["device"],
            payer=details["payer"] if stage == "payment" else None,
            amount=Money(amount=details["amount"], currency="CNY"),
            quantity=1,
            product_id="prd_game_card",
        )
        decisions.setdefault((who, number), {})[stage] = shop.decide(order, stage, at, f"ord_{who}_{number}")

    def outcome(who: str) -> list[str]:
        return [decisions[(who, n)]["payment"].action for n in range(len(people[who]))]

    assert outcome("honest") == ["allow"] * 50
    assert all(decisions[("honest", n)]["checkout"].action == "allow" for n in range(50))
    assert (
        outcome("card-tester") == ["allow"] * 5 + ["review"] * 10
    )  # more than 5 from one payer in 10 minutes
    # More than 10 from one device in an hour, counted at checkout (the payment cannot count devices):
    # the 11th checkout on is reviewed there, and the review carried to its payment.
    assert outcome("reseller") == ["allow"] * 10 + ["review"] * 5
    assert outcome("stolen") == ["block"]
    assert outcome("large") == ["review"]
    for (who, _), stages in decisions.items():
        for made in stages.values():
            if made.action != "allow":
                assert made.decided_by in {hit.rule_id for hit in made.hits}
    assert {decisions[("card-tester", n)]["payment"].decided_by for n in range(5, 15)} == {"payer-burst"}
    assert {decisions[("reseller", n)]["payment"].decided_by for n in range(10, 15)} == {"device-burst"}
    assert decisions[("reseller", 12)]["checkout"].decided_by == "device-burst"  # seen at checkout already
    assert decisions[("stolen", 0)]["payment"].decided_by == "learned-payer"
    assert decisions[("large", 0)]["payment"].decided_by == "first-order-large"
