"""Screening at checkout (shared/screening.py `screen_checkout`) on a fake counter store, and how a
checkout's review is carried to the payment's decision (`carried`)."""

from datetime import UTC, datetime

from shared.money import Money
from shared.orders import Payment, Status, chain_event
from shared.risk.counters import CounterItem
from shared.risk.engine import decide
from shared.risk.rules import parse_rules
from shared.risk.signals import Fingerprints, History, Signals
from shared.screening import carried, count_refund, screen_checkout
from tests.unit.test_payments import make_order

SECRET, MERCHANT, NOW = "a-server-secret-of-some-length", "mer_1", datetime(2026, 12, 5, 12, tzinfo=UTC)
KEY = Fingerprints.for_merchant(SECRET, MERCHANT)
RULES = parse_rules(
    {
        "version": 1,
        "rules": [
            {"id": "reseller", "type": "velocity", "kind": "device", "window": 60, "max_orders": 2,
             "action": "review"},
            {"id": "bad-net", "type": "list", "kind": "client", "values": ["198.51.100.0/24"], "action": "block"},
            {"id": "vip", "type": "list", "kind": "payer", "values": ["alipay:2088"], "action": "allow"},
            {"id": "stolen", "type": "list", "kind": "payer", "values": ["alipay:9999"], "action": "block"},
        ],
    }
)  # fmt: skip


class Counters:
    """Counts as the store does: written first, each order once per (item, token)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, int]] = {}
        self.tokens: set[tuple[str, str]] = set()

    def count(self, merchant_id, item: CounterItem, now, amount, stage, order_id, paid=False):
        found = self.items.setdefault(item.subject, {})
        if (item.subject, order_id) not in self.tokens:
            self.tokens.add((item.subject, order_id))
            name = f"o60_{int(now.timestamp()) // 3600}"
            found[name] = found.get(name, 0) + 1
        return dict(found)


def checkout(order_id: str, counters: Counters, device: str | None = "d1.x", client: str = "203.0.113.9"):
    signals = Signals(
        email="buyer@example.org",
        client=client,
        device=device,
        amount=Money(amount=1_000, currency="CNY"),
        quantity=1,
        product_id="prd_1",
        history=None,
    )
    return screen_checkout(MERCHANT, order_id, signals, lambda m, c: RULES, counters, SECRET, NOW)  # type: ignore[arg-type]


def payment(payer: str):
    signals = Signals(
        email="buyer@example.org", payer=payer, amount=Money(amount=1_000, currency="CNY"), quantity=1,
        product_id="prd_1", history=History(),
    )  # fmt: skip
    return decide(RULES, signals, "payment", KEY)


def test_a_device_past_its_count_is_reviewed_counting_each_order_once():
    counters = Counters()
    decisions = [checkout(f"ord_{n}", counters) for n in range(3)]
    assert [d.action for d in decisions] == ["allow", "allow", "review"]
    assert decisions[2].decided_by == "reseller"
    assert checkout("ord_2", counters).action == "review"  # the same order again is not counted again
    assert checkout("ord_3", counters, device=None).action == "allow"  # no device: its rule is skipped
    assert list(counters.items) == [f"device#{KEY.of('device', 'd1.x')}"]  # only what a rule counts


def test_a_listed_address_is_blocked_at_checkout():
    decision = checkout("ord_1", Counters(), client="198.51.100.20")
    assert (decision.action, decision.decided_by) == ("block", "bad-net")
    assert "198.51.100.20" not in decision.model_dump_json()


def test_a_checkout_review_is_carried_to_payment_unless_the_payer_is_allowed():
    counters = Counters()
    reviewed = [checkout(f"ord_{n}", counters) for n in range(3)][-1]

    ordinary = carried(reviewed, payment("alipay:1234"))
    vip = carried(reviewed, payment("alipay:2088"))
    stolen = carried(reviewed, payment("alipay:9999"))

    assert (ordinary.action, ordinary.decided_by) == ("review", "reseller")
    assert ordinary.reason.startswith("reviewed at checkout: ") and ordinary.stage == "payment"
    assert [hit.rule_id for hit in ordinary.hits] == ["reseller"]
    assert (vip.action, vip.decided_by) == ("allow", "vip")  # a strong identifier the checkout lacked
    assert (stolen.action, stolen.decided_by) == ("block", "stolen")  # a block stays a block
    assert carried(None, payment("alipay:1234")).action == "allow"
    assert carried(checkout("ord_9", Counters()), payment("alipay:1234")).action == "allow"


def test_only_a_refund_of_a_delivered_order_with_a_payer_counts_in_the_payers_history():
    class Refunds:
        def __init__(self) -> None:
            self.counted: list[tuple[str, str, str]] = []

        def count_refund(self, merchant_id: str, subject: str, order_id: str) -> None:
            self.counted.append((merchant_id, subject, order_id))

    paid_by = Payment(
        provider="sandbox", payment_id="pay_1", event_id="evt_1", amount=Money(amount=1999, currency="CNY")
    )
    placed = make_order(status=Status.REFUNDED)
    delivered = [*placed.history, chain_event(placed.order_id, placed.history, "order.delivered", NOW, {})]
    cases = {
        "delivered, with a payer": placed.model_copy(
            update={"history": delivered, "payment": paid_by.model_copy(update={"payer": "sandbox:p"})}
        ),
        "never delivered (a risk block, a sold-out)": placed.model_copy(
            update={"payment": paid_by.model_copy(update={"payer": "sandbox:p"})}
        ),
        "delivered, no payer": placed.model_copy(update={"history": delivered, "payment": paid_by}),
    }
    counted = {}
    for name, order in cases.items():
        refunds = Refunds()
        count_refund(order, refunds, SECRET)  # type: ignore[arg-type]
        counted[name] = refunds.counted
    assert counted == {
        "delivered, with a payer": [("mer_1", f"payer#{KEY.of('payer', 'sandbox:p')}", "ord_fixture")],
        "never delivered (a risk block, a sold-out)": [],
        "delivered, no payer": [],
    }
