"""Screening an order with its merchant's risk rules (docs/risk.md): at checkout, before anything is
reserved, and again once it is paid, before it is delivered.

At **checkout** (`screen_checkout`) the signals are the request's: e-mail and domain, the client
address, the page's device id, the amount, quantity and product, and the velocity of each identifier
a rule counts there (one UpdateItem per counted kind present: written first, its counts answered). A
`block` refuses the order; a decision where a rule fired is kept in the order's `order.created`
entry (no write of its own), and a `review` there is carried to payment (`carried`): the order is
reviewed once paid unless the payer is on an allow list.

Delivery screens every PAID order it is about to deliver, so no path to DELIVERED — the payment's own
delivery message, a re-drive after a lost one, a retry after a crash — skips it; an order its merchant
approved (`review.released`) is not screened again. The signals are the order's and its payment's: the
buyer's e-mail and domain, the payer's account and card country where the provider named them, the
amount, quantity and product, and the payer's history and velocity at this shop.

What it costs: the rules are read through a per-container cache; with a payer, one UpdateItem that
counts the order on the payer's counter item and answers its counts (shared/store/risk_counters.py);
a decision where a rule fired is one more write, its entry in the order's history. An order no rule
fired on gets no entry: "allowed, nothing fired" is what an order without one says.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.orders import Order
from shared.risk.counters import COUNTED_AT, PAID, REFUNDS, CounterItem, counter_items, velocity
from shared.risk.engine import STRONG, Decision, decide
from shared.risk.rules import RiskRules
from shared.risk.signals import Fingerprints, History, Signals
from shared.store.risk_counters import RiskCounters

Rules = Callable[[str, str], RiskRules]  # (merchant id, currency) -> the merchant's rules (or defaults)


def screen(order: Order, rules_of: Rules, counters: RiskCounters, secret: str, now: datetime) -> Decision:
    """The merchant's rules' decision about a PAID order at payment."""
    rules = rules_of(order.merchant_id, order.total.currency)
    payment = order.payment
    fingerprints = Fingerprints.for_merchant(secret, order.merchant_id)
    facts: dict[str, Any] = {
        "email": order.email,
        "payer": payment.payer if payment is not None else None,
        "card_country": payment.card_country if payment is not None else None,
        "amount": order.total,
        "quantity": order.quantity,
        "product_id": order.product_id,
        "client": order.client,
        "device": order.device,
    }
    signals = Signals(**facts, history=None)
    if signals.payer is not None:
        wanted = [i for i in counter_items(rules, signals, fingerprints) if i.kind == "payer"]
        item = (
            wanted[0]
            if wanted
            else CounterItem("payer", fingerprints.of("payer", signals.payer), signals.payer, ())
        )
        found = counters.count(
            order.merchant_id, item, now, order.total, "payment", order.order_id, paid=True
        )
        history = History(paid_orders=max(0, found.get(PAID, 0) - 1), refunds=found.get(REFUNDS, 0))
        counts = velocity([item], {item.subject: found}, now, order.total, "payment", written_first=True)
        signals = Signals(**facts, history=history, velocity=counts)
    return carried(at_checkout(order), decide(rules, signals, "payment", fingerprints))


def screen_checkout(
    merchant_id: str,
    order_id: str,
    signals: Signals,
    rules_of: Rules,
    counters: RiskCounters,
    secret: str,
    now: datetime,
) -> Decision:
    """The merchant's rules' decision about a checkout (its signals without counts or history): the
    order counted first on each identifier a rule counts at checkout, the decision on those counts."""
    rules = rules_of(merchant_id, signals.amount.currency)
    fingerprints = Fingerprints.for_merchant(secret, merchant_id)
    items = [
        item
        for item in counter_items(rules, signals, fingerprints)
        if item.windows and COUNTED_AT[item.kind] == "checkout"
    ]
    found = {
        item.subject: counters.count(merchant_id, item, now, signals.amount, "checkout", order_id)
        for item in items
    }
    counts = velocity(items, found, now, signals.amount, "checkout", written_first=True)
    at_checkout = signals.model_copy(update={"velocity": counts, "history": None})
    return decide(rules, at_checkout, "checkout", fingerprints)


def at_checkout(order: Order) -> Decision | None:
    """The checkout's decision, if a rule fired then (kept in the order's `order.created` entry)."""
    kept = order.history[0].data.get("risk") if order.history else None
    return Decision.model_validate(kept) if kept is not None else None


def carried(checkout: Decision | None, payment: Decision) -> Decision:
    """The payment's decision, made a review if the checkout's was one: a reseller bot's device burst
    seen at checkout is not forgotten because the payment cannot count devices. Only a payer on an
    allow list (a strong identifier, which the checkout could not know) lifts it; a block stays."""
    if checkout is None or checkout.action != "review" or payment.action != "allow":
        return payment
    allowed = {
        hit.rule_id
        for hit in payment.hits
        if hit.type == "list" and hit.kind in STRONG and hit.action == "allow"
    }
    if payment.decided_by in allowed:
        return payment
    fired = {hit.rule_id for hit in payment.hits}
    return payment.model_copy(
        update={
            "action": "review",
            "reason": f"reviewed at checkout: {checkout.reason}",
            "decided_by": checkout.decided_by,
            "hits": payment.hits + tuple(hit for hit in checkout.hits if hit.rule_id not in fired),
        }
    )


def count_refund(order: Order, counters: RiskCounters, secret: str) -> None:
    """A refunded order its buyer had received, counted in its payer's history (`refunds`: the
    "past refunds" rule). Refunds the shop made before delivering — a risk block, a sold-out or a late
    payment, a wrong amount — say nothing of the buyer and are not counted; nor an order without a
    payer (history is per payer account)."""
    payer = order.payment.payer if order.payment is not None else None
    if payer is None or not any(event.type == "order.delivered" for event in order.history):
        return
    fingerprints = Fingerprints.for_merchant(secret, order.merchant_id)
    counters.count_refund(order.merchant_id, f"payer#{fingerprints.of('payer', payer)}", order.order_id)


def screened_already(order: Order) -> bool:
    """Its merchant released it from review (approved), its allowance was noted, or a request for it
    went to its upstream (a top-up asked again while `processing`: screened before it was sent)."""
    return any(event.type in ("review.released", "risk.decided", "topup.sent") for event in order.history)


def record(decision: Decision) -> dict[str, Any]:
    """The decision as its history entry holds it: action, score, why, the rules that fired and the
    signals used (personal ones hashed)."""
    return {"risk": decision.model_dump(mode="json", exclude={"skipped"})}


def review_deadline(minutes: int | None) -> timedelta:
    return timedelta(minutes=minutes if minutes is not None else 24 * 60)
