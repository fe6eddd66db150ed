"""The risk engine: `decide(rules, signals, stage, fingerprints)`, a pure function from a merchant's
rules and one order's signals to allow, review or block, with every reason (docs/risk.md).

Each rule is evaluated on its own, in the document's order: it fires, stays quiet, or is skipped
because the order lacks what it needs (no payer before payment, no device id, no count from the
store, a threshold in another currency). Then, over the rules that fired and are not dry-run:

1. An allow-list hit on a strong identifier (STRONG: the payer, which the provider asserts in a
   signed callback and the buyer cannot type) decides `allow`, whatever else fired.
2. Otherwise a block rule, or a score (the fired rules' scores added, at most 100) at `block_at` or
   above, decides `block`.
3. Otherwise a review rule, or a score at `review_at` or above, decides `review` — unless an
   allow-list hit on a weak identifier (e-mail, its domain, client, device, card country: anyone may
   type or borrow them) waives the review. A weak allow never lifts a block.
4. Otherwise `allow`.

Dry-run rules are recorded with what they would have done, and the decision says what its action
and score would be were they live (`dry_run_action`, `dry_run_score`): how a merchant tries a rule.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.money import Money, display
from shared.risk.rules import (
    Action,
    AmountRule,
    DisposableEmailRule,
    FirstOrderRule,
    ListRule,
    PastRefundsRule,
    QuantityRule,
    RiskRules,
    Rule,
    RuleType,
    VelocityRule,
)
from shared.risk.signals import (
    PAYMENT_ONLY,
    Fingerprints,
    SignalKind,
    Signals,
    SignalsUsed,
    Stage,
    signals_used,
)

STRONG: frozenset[SignalKind] = frozenset({"payer"})
WORDS: dict[SignalKind, str] = {
    "email": "e-mail",
    "email_domain": "e-mail's domain",
    "client": "client address",
    "device": "device",
    "payer": "payer",
    "card_country": "card's country",
}
WINDOW_WORDS = {10: "10 minutes", 60: "hour", 1440: "24 hours"}


class Hit(BaseModel):
    """A rule that fired, and why, in words that name no personal value."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    type: RuleType
    kind: SignalKind | None  # the signal a list or velocity rule looks at
    action: Action
    score: int
    dry_run: bool
    reason: str


class Skip(BaseModel):
    """A rule this decision could not evaluate, and what it lacked."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    reason: str


class Decision(BaseModel):
    """What the engine decided about one order at one stage, and exactly why: an entry of the order's
    history as it is (its JSON holds hashes of personal values, never the values)."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    action: Action
    score: int  # the live fired rules' scores added, at most 100
    reason: str  # what decided the action, in words
    decided_by: str | None  # the rule that decided it, if one did (None: the score, or nothing fired)
    rules_version: int
    hits: tuple[Hit, ...]  # every rule that fired, dry-run ones included, in the document's order
    skipped: tuple[Skip, ...] = ()  # not kept in the order's history (`screening.record`)
    dry_run_action: Action  # the action were the dry-run rules live
    dry_run_score: int
    signals: SignalsUsed


Outcome = tuple[Literal["fired", "quiet", "skipped"], str]
QUIET: Outcome = ("quiet", "")


def decide(rules: RiskRules, signals: Signals, stage: Stage, fingerprints: Fingerprints) -> Decision:
    """Allow, review or block one order at checkout or at payment, with the rules that fired."""
    hits: list[Hit] = []
    skipped: list[Skip] = []
    for rule in rules.rules:
        outcome, reason = _evaluate(rule, rules, signals, stage)
        if outcome == "fired":
            kind = rule.kind if isinstance(rule, ListRule | VelocityRule) else None
            hit = Hit(
                rule_id=rule.id,
                type=rule.type,
                kind=kind,
                action=rule.action,
                score=rule.score,
                dry_run=rule.dry_run,
                reason=reason,
            )
            hits.append(hit)
        elif outcome == "skipped":
            skipped.append(Skip(rule_id=rule.id, reason=reason))
    action, score, reason, decided_by = _resolve(rules, [hit for hit in hits if not hit.dry_run])
    dry_run_action, dry_run_score, _, _ = _resolve(rules, hits)
    return Decision(
        stage=stage,
        action=action,
        score=score,
        reason=reason,
        decided_by=decided_by,
        rules_version=rules.version,
        hits=tuple(hits),
        skipped=tuple(skipped),
        dry_run_action=dry_run_action,
        dry_run_score=dry_run_score,
        signals=signals_used(signals, fingerprints),
    )


def _resolve(rules: RiskRules, hits: list[Hit]) -> tuple[Action, int, str, str | None]:
    """(action, score, reason, deciding rule) from the rules that fired, by the module's precedence."""
    score = min(100, sum(hit.score for hit in hits))
    allowed = [hit for hit in hits if hit.type == "list" and hit.action == "allow"]
    if strong := next((hit for hit in allowed if hit.kind in STRONG), None):
        return "allow", score, f"the payer is on allow list '{strong.rule_id}'", strong.rule_id
    if blocking := next((hit for hit in hits if hit.action == "block"), None):
        return "block", score, f"rule '{blocking.rule_id}' blocks: {blocking.reason}", blocking.rule_id
    if rules.block_at is not None and score >= rules.block_at:
        return "block", score, f"score {score} is at or above block_at {rules.block_at}", None
    reviewing = next((hit for hit in hits if hit.action == "review"), None)
    if reviewing is None and not (rules.review_at is not None and score >= rules.review_at):
        return "allow", score, "no rule asks for more than allow" if hits else "no rule fired", None
    why = (
        f"rule '{reviewing.rule_id}' reviews: {reviewing.reason}"
        if reviewing is not None
        else f"score {score} is at or above review_at {rules.review_at}"
    )
    if allowed:
        waiver = allowed[0]
        return "allow", score, f"{waiver.reason}, which waives the review ({why})", waiver.rule_id
    return "review", score, why, reviewing.rule_id if reviewing is not None else None


def _evaluate(rule: Rule, rules: RiskRules, signals: Signals, stage: Stage) -> Outcome:
    """Whether one rule fires on these signals, and the reason in words (or why it was skipped)."""
    history = signals.history
    if isinstance(rule, FirstOrderRule | PastRefundsRule) and history is None:
        return "skipped", "the buyer's history with the shop is not known (no payer account)"
    match rule:
        case ListRule():
            value = signals.value(rule.kind)
            if value is None:
                return "skipped", _absent(rule.kind, stage)
            listed = value in rules.listed(rule)
            return (
                ("fired", f"the {WORDS[rule.kind]} is on {rule.action} list '{rule.id}'") if listed else QUIET
            )
        case VelocityRule():
            return _velocity(rule, signals, stage)
        case AmountRule():
            if rule.above.currency != signals.amount.currency:
                return (
                    "skipped",
                    f"its threshold is in {rule.above.currency}, the order in {signals.amount.currency}",
                )
            if signals.amount.amount > rule.above.amount:
                return "fired", f"an order of {display(signals.amount)} (above {display(rule.above)})"
            return QUIET
        case QuantityRule():
            if signals.quantity > rule.above:
                return "fired", f"{signals.quantity} units in one order (above {rule.above})"
            return QUIET
        case FirstOrderRule():
            if rule.above.currency != signals.amount.currency:
                return (
                    "skipped",
                    f"its threshold is in {rule.above.currency}, the order in {signals.amount.currency}",
                )
            if history is not None and history.first_order and signals.amount.amount > rule.above.amount:
                return (
                    "fired",
                    f"a first order at this shop of {display(signals.amount)} (above {display(rule.above)})",
                )
            return QUIET
        case DisposableEmailRule():
            return (
                ("fired", "the e-mail's domain is a throw-away mail service")
                if signals.disposable_domain
                else QUIET
            )
        case PastRefundsRule():
            refunds = history.refunds if history is not None else 0
            if refunds >= rule.at_least:
                return "fired", f"{refunds} earlier orders at this shop refunded (at least {rule.at_least})"
            return QUIET
    raise TypeError(f"no evaluation for rule type {type(rule).__name__}")  # a new rule type needs one


def _velocity(rule: VelocityRule, signals: Signals, stage: Stage) -> Outcome:
    value = signals.value(rule.kind)
    if value is None:
        return "skipped", _absent(rule.kind, stage)
    count = signals.velocity.get((rule.kind, value, rule.window))
    if count is None:
        return (
            "skipped",
            f"no count of orders from this {WORDS[rule.kind]} in the last {WINDOW_WORDS[rule.window]}",
        )
    where = f"from this {WORDS[rule.kind]} in the last {WINDOW_WORDS[rule.window]}"
    if rule.max_orders is not None and count.orders > rule.max_orders:
        return "fired", f"{count.orders} orders {where} (more than {rule.max_orders})"
    most = rule.max_amount
    if most is None:
        return QUIET
    if most.currency != signals.amount.currency:
        why = f"its amount is in {most.currency}, the order in {signals.amount.currency}"
        return QUIET if rule.max_orders is not None else ("skipped", why)
    if count.amount > most.amount:
        spent = Money(amount=count.amount, currency=most.currency)
        return "fired", f"{display(spent)} {where} (more than {display(most)})"
    return QUIET


def _absent(kind: SignalKind, stage: Stage) -> str:
    if kind in PAYMENT_ONLY and stage == "checkout":
        return f"the {WORDS[kind]} is known only at payment"
    return f"the order has no {WORDS[kind]}"
