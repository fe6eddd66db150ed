"""What the store writes for the risk engine (shared/risk/counters.py): the items one decision
needs, the sliding-window estimate and its error bound, and counts that add up over an in-memory
store applying the writes as DynamoDB would (written first: each write answers the item after it)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.money import Money
from shared.risk import counters
from shared.risk.counters import (
    CounterItem,
    amount_name,
    bucket,
    counter_items,
    counter_write,
    estimate,
    history,
    orders_name,
    stale_buckets,
    velocity,
)
from shared.risk.defaults import default_rules
from shared.risk.rules import RiskRules, VelocityRule, parse_rules
from shared.risk.signals import Fingerprints, History, Signals, Velocity

KEY = Fingerprints.for_merchant("a-server-secret-of-some-length", "mer_1")
START = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)  # midnight UTC: a bucket of every window starts
CNY = "CNY"


def signals(**changes) -> Signals:
    values = {
        "email": "buyer@example.org",
        "client": "198.51.100.7",
        "device": "dev-1",
        "amount": Money(amount=1_000, currency=CNY),
        "quantity": 1,
        "product_id": "prd_1",
    }
    return Signals(**{**values, **changes})


def rules() -> RiskRules:
    """The defaults and a rule counting client addresses, as a merchant may add."""
    defaults = default_rules()
    flood = VelocityRule(
        id="client-flood", type="velocity", kind="client", window=60, max_orders=20, action="block", score=50
    )
    return defaults.model_copy(update={"rules": [*defaults.rules, flood]})


class FakeCounters:
    """The counter items as the store keeps them (shared/store/risk_counters.py): a write ADDs and SETs
    expires and last, refused when `last` is its own token (the SDK's retry of a write whose answer
    was lost: the item is then read instead), answers the item after it, and stale buckets go in a
    second write when an answer shows some. Same signature as RiskCounters.count."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, int | str]] = {}
        self.refused = 0

    def count(self, merchant_id, item: CounterItem, now, amount, stage, order_id, paid=False):
        write = counter_write(item, now, amount, stage, order_id, paid)
        found = self.items.setdefault(write.subject, {})
        if found.get("last") == write.token:
            self.refused += 1
        else:
            for name, value in write.add.items():
                found[name] = int(found.get(name, 0)) + value
            found["expires"], found["last"] = write.expires, write.token
        numbers = {k: v for k, v in found.items() if isinstance(v, int)}
        for name in stale_buckets(numbers, now):
            del found[name]
        return numbers


def test_a_decision_reads_one_item_per_identifier_the_rules_count():
    items = counter_items(rules(), signals(), KEY)
    assert [(item.kind, item.windows, item.history) for item in items] == [
        ("email", (), True),  # first order and refunds: the buyer's history
        ("client", (60,), False),
        ("device", (60,), False),
    ]
    assert items[1].subject == f"client#{KEY.of('client', '198.51.100.7')}"
    assert "198.51.100.7" not in repr(items)  # the value keys the signals, never a record or a log
    at_payment = counter_items(rules(), signals(payer="alipay:1", device=None), KEY)
    assert [(item.kind, item.windows) for item in at_payment] == [
        ("email", ()),
        ("client", (60,)),
        ("payer", (10, 1440)),
    ]
    dry = parse_rules(
        {
            "rules": [
                {
                    "type": "velocity",
                    "kind": "email",
                    "window": 10,
                    "max_orders": 3,
                    "action": "block",
                    "dry_run": True,
                }
            ]
        }
    )
    assert [(item.kind, item.windows, item.history) for item in counter_items(dry, signals(), KEY)] == [
        ("email", (10,), False)
    ]
    assert counter_items(parse_rules({}), signals(), KEY) == ()


def test_buckets_are_numbered_from_the_epoch_per_window():
    assert bucket(10, START) == int(START.timestamp()) // 600
    assert bucket(1440, START + timedelta(hours=11, minutes=59)) == bucket(1440, START)
    assert bucket(60, START - timedelta(seconds=1)) == bucket(60, START) - 1
    assert orders_name(60, 7) == "o60_7" and amount_name(60, 7, CNY) == "a60_7_CNY"


def test_the_estimate_weighs_the_previous_bucket_by_its_share_still_in_the_window():
    assert estimate(3, 10, 10, START) == 13  # a new bucket: the whole previous one is in the window
    assert estimate(3, 10, 10, START + timedelta(minutes=5)) == 8
    assert estimate(3, 10, 10, START + timedelta(minutes=9, seconds=59)) == 3  # floor(10 * 1/600) = 0
    assert estimate(0, 0, 1440, START) == 0


@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from([10, 60, 1440]),
    into=st.floats(min_value=0, max_value=0.9999),
    offsets=st.lists(st.floats(min_value=0, max_value=1.9999), max_size=60),
)
def test_the_estimate_is_within_its_documented_bound_of_the_true_count(window, into, offsets):
    """True count T over (now - W, now]; E within [c, c + p] and |E - T| < p * max(f, 1 - f) + 1."""
    seconds = window * 60
    start = int(START.timestamp()) - seconds  # the previous bucket's start
    now = start + seconds + int(into * seconds)
    times = [start + int(offset * seconds) for offset in offsets]
    times = [t for t in times if t <= now]
    current = sum(1 for t in times if t >= start + seconds)
    previous = len(times) - current
    true = sum(1 for t in times if t > now - seconds)
    estimated = estimate(current, previous, window, datetime.fromtimestamp(now, UTC))
    share = 1 - (now - start - seconds) / seconds
    assert current <= estimated <= current + previous
    assert abs(estimated - true) < previous * max(share, 1 - share) + 1


@settings(max_examples=200, deadline=None)
@given(
    window=st.sampled_from([10, 60, 1440]), n=st.integers(1, 50), span=st.floats(0, 1), edge=st.floats(0, 1)
)
def test_a_burst_faster_than_the_window_is_seen_nearly_whole(window, n, span, edge):
    """n orders over d minutes, however they straddle a bucket edge: seen as >= n * (1 - d / W) - 1."""
    seconds = window * 60
    d = int(span * seconds)
    boundary = int(START.timestamp())
    first = boundary - int(edge * d)  # the edge falls somewhere inside the burst
    times = [first + (d * i) // max(1, n - 1) for i in range(n)]
    now = times[-1]
    current = sum(1 for t in times if t >= boundary)
    estimated = estimate(current, n - current, window, datetime.fromtimestamp(now, UTC))
    assert estimated >= n * (1 - d / seconds) - 1


def test_counts_include_this_order_once_whichever_stage_reads_them():
    amount = Money(amount=1_000, currency=CNY)
    items = counter_items(rules(), signals(payer="alipay:1"), KEY)
    unseen = velocity(items, {}, START, amount, "checkout")
    assert unseen[("client", "198.51.100.7", 60)] == Velocity(orders=1, amount=1_000)
    assert unseen[("payer", "alipay:1", 10)] == Velocity(orders=1, amount=1_000)
    counted_once = {}
    for window in (10, 60, 1440):
        counted_once |= {
            orders_name(window, bucket(window, START)): 1,
            amount_name(window, bucket(window, START), CNY): 1_000,
        }
    stored = {item.subject: counted_once for item in items}
    at_payment = velocity(items, stored, START, amount, "payment")
    assert at_payment[("client", "198.51.100.7", 60)].orders == 1  # counted at checkout already
    assert at_payment[("payer", "alipay:1", 10)].orders == 2  # counted at payment, after this read
    assert (
        velocity(items, stored, START, amount, "payment", written_first=True)[
            ("payer", "alipay:1", 10)
        ].orders
        == 1
    )
    other_currency = velocity(items, stored, START, Money(amount=500, currency="USD"), "checkout")
    assert other_currency[("device", "dev-1", 60)] == Velocity(orders=2, amount=500)  # amounts per currency


def test_a_write_counts_the_windows_its_rules_read_and_expires_when_idle():
    items = counter_items(rules(), signals(payer="alipay:1"), KEY)
    client, payer = items[1], items[3]
    write = counter_write(client, START, Money(amount=1_000, currency=CNY), "checkout", "ord_1")
    assert write.subject == client.subject and write.token == "ord_1#checkout"
    assert write.add == {
        orders_name(60, bucket(60, START)): 1,
        amount_name(60, bucket(60, START), CNY): 1_000,
    }
    assert write.expires == int((START + timedelta(days=2)).timestamp())
    paid = counter_write(payer, START, Money(amount=1, currency=CNY), "payment", "ord_1", paid=True)
    assert paid.add["paid"] == 1 and {
        orders_name(10, bucket(10, START)),
        orders_name(1440, bucket(1440, START)),
    } < set(paid.add)
    assert paid.expires == int((START + counters.KEEP_HISTORY).timestamp())  # the history lives on it
    with pytest.raises(ValueError, match="counted at checkout"):
        counter_write(client, START, Money(amount=1, currency=CNY), "payment", "ord_1")


def test_stale_buckets_are_those_older_than_their_windows_previous_one():
    old = bucket(60, START) - 2
    stored = {
        orders_name(60, old): 4,
        amount_name(60, old, "USD"): 9,
        orders_name(60, old + 1): 2,
        orders_name(10, bucket(10, START)): 1,
        "paid": 3,
    }
    assert stale_buckets(stored, START) == [amount_name(60, old, "USD"), orders_name(60, old)]


def test_the_buyers_history_is_read_from_its_item():
    assert history(None) == History() and history(None).first_order
    assert history({"paid": 2, "refunds": 1, "o10_1": 5}) == History(paid_orders=2, refunds=1)


def test_counts_add_up_over_a_store_applying_the_writes_and_a_retried_write_counts_once():
    store, counted = FakeCounters(), rules()
    seen = []
    for n in range(40):
        now = START + timedelta(minutes=2 * n)  # one order every two minutes from one address
        order = signals(email=f"buyer{n}@example.org")
        (client,) = [item for item in counter_items(counted, order, KEY) if item.kind == "client"]
        store.count("mer_1", client, now, order.amount, "checkout", f"ord_{n}")
        found = store.count("mer_1", client, now, order.amount, "checkout", f"ord_{n}")  # the SDK's retry
        counts = velocity(
            [client], {client.subject: found}, now, order.amount, "checkout", written_first=True
        )
        seen.append(counts[("client", "198.51.100.7", 60)].orders)
    assert seen[:30] == list(range(1, 31))  # all in the first hour's bucket: exact
    assert 30 <= seen[-1] <= 32  # 30 orders in the last hour (this one included); the estimate says 31
    assert store.refused == 40
    kept = store.items[f"client#{KEY.of('client', '198.51.100.7')}"]
    assert len({name for name in kept if name.startswith("o60_")}) <= 2  # stale buckets go as new ones come
