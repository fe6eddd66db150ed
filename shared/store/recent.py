"""Reads kept for a few seconds per process (a Lambda container): an item that every order would
otherwise read (its product, the product's stock level, the merchant's webhook) is read at most once
per `seconds` by each container, so its DynamoDB partition sees at most containers ÷ seconds reads
whatever the order rate (docs/allocation.md "Hot keys"). What comes from here may be up to `seconds`
old: only a caller that may act on a slightly old value reads through it (docs/merchant-api.md,
"How soon a change applies"); the merchant API and whatever settles money or stock later read the
store itself."""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from shared.errors import NotFound
from shared.products import Product
from shared.shops import ShopSettings
from shared.store.made import MadeCodes
from shared.store.merchants import MerchantStore
from shared.store.stock.allocation import Allocation

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

KEPT = 1024  # items one process keeps; past it the one read longest ago goes (it is only read again)


class Recent(Generic[K, V]):
    """A read-through cache: `get(key, read)` returns what `read()` gave when it was started less than
    `seconds` ago, else calls it. Absence (None) is kept like any value. One read per key at a time:
    callers of the same key wait for the read under way (the local runtime's threads; a Lambda
    container serves one request at a time anyway)."""

    def __init__(self, seconds: float, kept: int = KEPT, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._most, self._clock = kept, clock
        self._kept: dict[K, tuple[float, V]] = {}  # key -> (good until, value), oldest read first
        self._reading: dict[K, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: K, read: Callable[[], V]) -> V:
        with self._lock:
            if (kept := self._fresh(key)) is not None:
                return kept[1]
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._lock:
                if (kept := self._fresh(key)) is not None:
                    return kept[1]  # read by another caller while this one waited
            # Timed from the start of the read: what it returns is at least that new, so nothing is
            # served more than `seconds` after the moment it describes.
            started = self._clock()
            value = read()
            with self._lock:
                self._kept.pop(key, None)
                self._kept[key] = (started + self.seconds, value)
                while len(self._kept) > self._most:
                    del self._kept[next(iter(self._kept))]
                self._reading.pop(key, None)
            return value

    def holds(self, key: K) -> bool:
        """True while a read of `key` is kept (the next `get` will not read)."""
        with self._lock:
            return self._fresh(key) is not None

    def _fresh(self, key: K) -> tuple[float, V] | None:
        kept = self._kept.get(key)
        return kept if kept is not None and self._clock() < kept[0] else None


class RecentStock:
    """Products' available stock as this process read it less than `seconds` ago: for the stock.low
    check after a delivery and the number on the product page, not for selling (a claim is its own
    conditional write)."""

    def __init__(
        self,
        allocation: Allocation,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        made: MadeCodes | None = None,
    ) -> None:
        self._allocation, self._made = allocation, made
        self.kept: Recent[str, int] = Recent(seconds, clock=clock)

    def available(self, product: Product) -> int:
        return self.kept.get(
            product.product_id, lambda: self._allocation.available(product.product_id, product.shards)
        )

    def left(self, product: Product) -> int | None:
        """How many a buyer may still order, for the pages: a stocked product's available codes, a
        capped generated product's codes still to make; None for what is never sold out (top-up,
        manual, license, generated without a cap)."""
        if product.stocked:
            return self.available(product)
        cap, made = product.cap, self._made
        if cap is None or made is None:
            return None
        return self.kept.get(product.product_id, lambda: max(0, cap - made.made(product.product_id)))


class RecentShops:
    """Shops' settings as this process read them less than `seconds` ago (None: no such merchant): for
    the storefront's page, never for the merchant API."""

    def __init__(
        self, merchants: MerchantStore, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._merchants = merchants
        self.kept: Recent[str, ShopSettings | None] = Recent(seconds, clock=clock)

    def shop(self, merchant_id: str) -> ShopSettings | None:
        return self.kept.get(merchant_id, lambda: self._read(merchant_id))

    def _read(self, merchant_id: str) -> ShopSettings | None:
        try:
            return self._merchants.shop(merchant_id)
        except NotFound:
            return None
