"""Reads kept per process for a few seconds (shared/store/recent.py), on an injected clock: each key is
read at most once per `seconds`, whatever the rate of callers, and never served once that old."""

import threading
from datetime import UTC, datetime

import pytest

from shared.money import Money
from shared.products import Product
from shared.store.recent import Recent, RecentStock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Counts its reads; returns what it holds now."""

    def __init__(self, value: object) -> None:
        self.value, self.reads = value, 0

    def read(self) -> object:
        self.reads += 1
        return self.value


def test_a_key_is_read_once_until_its_seconds_are_over_then_read_again():
    clock, store = Clock(), Store("v1")
    kept: Recent[str, object] = Recent(1.0, clock=clock)

    assert [kept.get("p", store.read) for _ in range(1000)] == ["v1"] * 1000
    assert store.reads == 1
    store.value = "v2"  # changed in the store: not seen while the read is kept
    clock.now += 0.999
    assert kept.get("p", store.read) == "v1" and store.reads == 1 and kept.holds("p")
    clock.now += 0.001  # `seconds` after the read started: never served again
    assert not kept.holds("p")
    assert kept.get("p", store.read) == "v2" and store.reads == 2


def test_the_seconds_count_from_the_start_of_the_read():
    clock = Clock()
    kept: Recent[str, object] = Recent(1.0, clock=clock)

    def slow_read() -> object:
        clock.now += 0.4  # the read takes 0.4 s: what it returns is 0.4 s old when it comes
        return "v"

    kept.get("p", slow_read)
    clock.now += 0.599
    assert kept.holds("p")
    clock.now += 0.001
    assert not kept.holds("p")


def test_keys_are_kept_apart_and_absence_is_kept_too():
    clock, a, missing = Clock(), Store("a"), Store(None)
    kept: Recent[str, object] = Recent(1.0, clock=clock)
    for _ in range(10):
        assert kept.get("a", a.read) == "a"
        assert kept.get("missing", missing.read) is None
    assert (a.reads, missing.reads) == (1, 1)


def test_zero_seconds_reads_every_time():
    clock, store = Clock(), Store("v")
    kept: Recent[str, object] = Recent(0, clock=clock)
    for _ in range(5):
        kept.get("p", store.read)
    assert store.reads == 5


def test_a_failed_read_keeps_nothing():
    clock, store = Clock(), Store("v")
    kept: Recent[str, object] = Recent(1.0, clock=clock)

    def failing() -> object:
        raise TimeoutError("throttled")

    for _ in range(2):  # each caller reads again, and sees the failure
        with pytest.raises(TimeoutError):
            kept.get("p", failing)
    assert kept.get("p", store.read) == "v" and store.reads == 1


def test_past_its_size_the_key_read_longest_ago_goes():
    clock, store = Clock(), Store("v")
    kept: Recent[int, object] = Recent(1.0, kept=3, clock=clock)
    for key in (1, 2, 3, 4):
        kept.get(key, store.read)
    assert [kept.holds(k) for k in (1, 2, 3, 4)] == [False, True, True, True]


def test_callers_of_one_key_at_once_wait_for_one_read():
    clock, started, release = Clock(), threading.Event(), threading.Event()
    kept: Recent[str, object] = Recent(1.0, clock=clock)
    reads = []

    def read() -> object:
        reads.append(1)
        started.set()
        release.wait(5)
        return "v"

    first = threading.Thread(target=kept.get, args=("p", read))
    first.start()
    started.wait(5)
    answers: list[object] = []
    others = [threading.Thread(target=lambda: answers.append(kept.get("p", read))) for _ in range(8)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert answers == ["v"] * 8 and len(reads) == 1


def test_stock_levels_are_read_per_product_once_per_seconds():
    class Stock:
        def __init__(self) -> None:
            self.reads: list[tuple[str, int]] = []

        def available(self, product_id: str, shards: int) -> int:
            self.reads.append((product_id, shards))
            return 7

    clock, stock = Clock(), Stock()
    levels = RecentStock(stock, 1.0, clock=clock)  # type: ignore[arg-type]
    product = Product(
        product_id="prd_" + "0" * 20,
        merchant_id="mer_" + "0" * 20,
        name="Card",
        description="",
        price=Money(amount=100, currency="CNY"),
        delivery="stock",
        max_per_order=1,
        shards=8,
        active=True,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert [levels.available(product) for _ in range(50)] == [7] * 50
    clock.now += 1
    assert levels.available(product) == 7
    assert stock.reads == [(product.product_id, 8)] * 2


def test_what_is_left_is_a_stocked_products_stock_a_capped_generated_products_cap_less_made_else_none():
    class Stock:
        def available(self, product_id: str, shards: int) -> int:
            return 7

    class Made:
        def __init__(self) -> None:
            self.made_by = {"prd_" + "1" * 20: 3, "prd_" + "2" * 20: 12}
            self.reads: list[str] = []

        def made(self, product_id: str) -> int:
            self.reads.append(product_id)
            return self.made_by[product_id]

    clock, made = Clock(), Made()
    levels = RecentStock(Stock(), 1.0, clock=clock, made=made)  # type: ignore[arg-type]

    def product(n: int, **terms) -> Product:
        return Product(
            product_id=f"prd_{str(n) * 20}",
            merchant_id="mer_" + "0" * 20,
            name="Card",
            description="",
            price=Money(amount=100, currency="CNY"),
            max_per_order=1,
            shards=1,
            active=True,
            created_at=datetime(2025, 1, 1, tzinfo=UTC),
            **terms,
        )

    capped = product(1, delivery="generated", generated={"pattern": "GIFT-XXXXXXXXXX", "cap": 10})
    past = product(2, delivery="generated", generated={"pattern": "GIFT-XXXXXXXXXX", "cap": 10})
    uncapped = product(3, delivery="generated", generated={"pattern": "GIFT-XXXXXXXXXX"})
    manual = product(4, delivery="manual", manual={})
    assert [levels.left(capped) for _ in range(5)] == [7] * 5  # 10 - 3, read once
    assert levels.left(past) == 0  # a cap lowered below what was made: sold out, never negative
    assert (levels.left(uncapped), levels.left(manual), levels.left(product(5, delivery="stock"))) == (
        None,
        None,
        7,
    )
    made.made_by["prd_" + "1" * 20] = 10
    clock.now += 1
    assert levels.left(capped) == 0
    assert made.reads == ["prd_" + "1" * 20, "prd_" + "2" * 20, "prd_" + "1" * 20]
