"""Velocity counters and the buyer's history: what the store writes for the engine, as item
subjects and attribute names. No I/O here; shared/store/risk_counters.py turns `counter_write` into
one UpdateItem per counted identifier (docs/risk.md "Counters").

**Items.** One item per (merchant, kind, hashed value) — an e-mail, a client, a device, a payer —
keyed by its `subject`, `<kind>#<Fingerprints hash>` (key `risk#<merchant>#<subject>`). It holds
the buckets of the windows its rules read, so counting an order on it is one write whatever the
windows. `counter_items` names the items a decision needs. A payer's item also keeps the buyer's
history with the shop (`paid`, `refunds`), for "first order" and "past refunds".

**Buckets.** For a window of W minutes, time is cut into W-minute buckets, numbered from the epoch;
the item holds `o<W>_<n>` (orders in bucket n) and `a<W>_<n>_<currency>` (their amount in minor
units). Counting an order is one UpdateItem, **written first**: it ADDs to the current bucket of
each window its rules read, sets `expires` (TTL) and answers the item as it is after, so the
decision needs no read and sees every order counted before it, concurrent ones too. Buckets older
than the previous one (`stale_buckets`) are removed by a second write when an answer shows some. An
order is counted where its identifier is first known (COUNTED_AT): e-mail, client and device at
checkout — every checkout decided, blocked ones too, so a bot that keeps trying stays counted — and
the payer at payment. Each write also sets `last` to its token (`<order>#<stage>`) on the condition
that `last` differs: the SDK's retry of a write whose answer was lost is refused, not counted twice
(DESIGN.md).

**Sliding windows.** The orders in the last W minutes are estimated from the current bucket (count
c, `into` seconds old) and the previous one (count p) as if p's orders were spread evenly over it:
E = c + floor(p * f), f = 1 - into / (W * 60), the share of the previous bucket still inside the
window. The true count T lies, like E, between c and c + p, and |E - T| < p * max(f, 1 - f) + 1:
exact for evenly spread orders, and a burst is seen nearly whole — n orders within d minutes are
counted at least n * (1 - d / W) - 1 at the burst's last order (the bucket edge is at most d
minutes back, so f >= 1 - d / W). Fixed buckets alone would forget the whole burst at each edge.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.money import Money
from shared.risk.rules import FirstOrderRule, PastRefundsRule, RiskRules, VelocityRule
from shared.risk.signals import (
    VELOCITY_KINDS,
    WINDOWS,
    Fingerprints,
    History,
    Signals,
    Stage,
    Velocity,
    VelocityKey,
    VelocityKind,
    Window,
)

COUNTED_AT: dict[VelocityKind, Stage] = {
    "email": "checkout",
    "client": "checkout",
    "device": "checkout",
    "payer": "payment",
}
PAID, REFUNDS, LAST, EXPIRES = "paid", "refunds", "last", "expires"
KEEP_COUNTS = timedelta(days=2)  # an item idle this long holds no bucket any window reads
KEEP_HISTORY = timedelta(days=400)  # the e-mail's item: the buyer's history outlives the windows
_BUCKET = re.compile(r"[oa](\d+)_(\d+)(?:_[A-Z]{3})?")

Stored = Mapping[str, int]  # an item's number attributes, as the store read them


@dataclass(frozen=True)
class CounterItem:
    """One counter item a decision reads: whose, which windows the rules look at, and whether the
    rules read the buyer's history from it."""

    kind: VelocityKind
    digest: str  # Fingerprints.of(kind, value)
    value: str = field(repr=False)  # the signal's own value: keys Signals.velocity; never stored
    windows: tuple[Window, ...]
    history: bool = False

    @property
    def subject(self) -> str:
        return f"{self.kind}#{self.digest}"


@dataclass(frozen=True)
class CounterWrite:
    """One UpdateItem: ADD `add`, SET expires and last = token, on the condition that `last` is
    absent or not `token`; the item as it is after is the answer (written first)."""

    subject: str
    add: dict[str, int]
    expires: int  # epoch seconds
    token: str


def counter_items(rules: RiskRules, signals: Signals, fingerprints: Fingerprints) -> tuple[CounterItem, ...]:
    """The counter items this order's decision needs (dry-run rules' counts too), for the store's one
    batched read with the rules item. `signals` need no counts yet."""
    windows: dict[VelocityKind, set[Window]] = {}
    for rule in rules.rules:
        if isinstance(rule, VelocityRule):
            windows.setdefault(rule.kind, set()).add(rule.window)
    history = any(isinstance(rule, FirstOrderRule | PastRefundsRule) for rule in rules.rules)
    items = []
    for kind in VELOCITY_KINDS:
        value = signals.value(kind)
        reads_history = history and kind == "email"
        if value is not None and (kind in windows or reads_history):
            found = tuple(sorted(windows.get(kind, ())))
            items.append(CounterItem(kind, fingerprints.of(kind, value), value, found, reads_history))
    return tuple(items)


def bucket(window: Window, now: datetime) -> int:
    """The number of the `window`-minute bucket `now` falls in, counted from the epoch."""
    return int(now.timestamp()) // (window * 60)


def orders_name(window: Window, number: int) -> str:
    return f"o{window}_{number}"


def amount_name(window: Window, number: int, currency: str) -> str:
    return f"a{window}_{number}_{currency}"


def estimate(current: int, previous: int, window: Window, now: datetime) -> int:
    """The count over the last `window` minutes from the current and previous buckets' counts."""
    seconds = window * 60
    into = int(now.timestamp()) % seconds
    return current + previous * (seconds - into) // seconds


def counted_already(kind: VelocityKind, stage: Stage, written_first: bool) -> bool:
    """Whether a read at `stage` finds this order in the kind's counts: counted at an earlier stage,
    or at this one by a write made before the read."""
    counted_at = COUNTED_AT[kind]
    return (counted_at == "checkout" and stage == "payment") or (counted_at == stage and written_first)


def velocity(
    items: Sequence[CounterItem],
    stored: Mapping[str, Stored],
    now: datetime,
    amount: Money,
    stage: Stage,
    written_first: bool = False,
) -> dict[VelocityKey, Velocity]:
    """`Signals.velocity` from the items as read (`stored` by subject; an item never written: absent),
    this order included: added here unless the read found it counted already."""
    counts: dict[VelocityKey, Velocity] = {}
    for item in items:
        found = stored.get(item.subject, {})
        this = 0 if counted_already(item.kind, stage, written_first) else 1
        for window in item.windows:
            now_at, currency = bucket(window, now), amount.currency
            orders = estimate(
                found.get(orders_name(window, now_at), 0),
                found.get(orders_name(window, now_at - 1), 0),
                window,
                now,
            )
            spent = estimate(
                found.get(amount_name(window, now_at, currency), 0),
                found.get(amount_name(window, now_at - 1, currency), 0),
                window,
                now,
            )
            counts[(item.kind, item.value, window)] = Velocity(
                orders=orders + this, amount=spent + this * amount.amount
            )
    return counts


def history(stored_email_item: Stored | None) -> History:
    """The buyer's history from their e-mail's item as read (None: never written, a first order)."""
    found = stored_email_item or {}
    return History(paid_orders=int(found.get(PAID, 0)), refunds=int(found.get(REFUNDS, 0)))


def counter_write(
    item: CounterItem, now: datetime, amount: Money, stage: Stage, order_id: str, paid: bool = False
) -> CounterWrite:
    """The write that counts this order on one identifier at `stage` (its COUNTED_AT), written first:
    the current bucket of each window its rules read, and with `paid` one more paid order in its
    history (a payer's item, at payment). ValueError for a kind counted at the other stage."""
    if COUNTED_AT[item.kind] != stage:
        raise ValueError(f"a {item.kind} is counted at {COUNTED_AT[item.kind]}, not at {stage}")
    add: dict[str, int] = {PAID: 1} if paid else {}
    for window in item.windows:
        now_at = bucket(window, now)
        add[orders_name(window, now_at)] = 1
        add[amount_name(window, now_at, amount.currency)] = amount.amount
    kept = KEEP_HISTORY if paid or item.kind == "email" else KEEP_COUNTS
    return CounterWrite(item.subject, add, int((now + kept).timestamp()), f"{order_id}#{stage}")


def stale_buckets(stored: Stored, now: datetime) -> list[str]:
    """The item's buckets no window reads any more (older than their window's previous bucket)."""
    return sorted(name for name in stored if stale(name, now))


def stale(name: str, now: datetime) -> bool:
    """A bucket attribute older than its window's previous bucket (other attributes: never stale)."""
    match = _BUCKET.fullmatch(name)
    if match is None or int(match[1]) not in WINDOWS:
        return False
    window: Window = int(match[1])  # type: ignore[assignment] # one of WINDOWS, checked above
    return int(match[2]) < bucket(window, now) - 1
