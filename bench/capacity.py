"""How many orders/s the key design lets DynamoDB take: for one product as its stock shards grow, and
for the whole shop as the index shards grow, and which item binds. A computation, not a measurement
(no AWS): every request an order makes on the hot path (checkout → PAID → DELIVERED, quantity 1) is
listed below from the code with the partition key it lands on; the keys of one second of orders at
the goal rate are computed with the code's own key functions and shard counts, and the busiest
partition of each kind sets its ceiling.

DynamoDB's published limits: one partition takes 1,000 write units/s (a write of ≤ 1 KB is one) and
3,000 read units/s (a strongly consistent read of ≤ 4 KB is one, an eventually consistent one half),
a global secondary index's partitions the same, and a throttled index partition throttles the table
write that feeds it. Items under one partition key value share one partition: DynamoDB may split it
for heat after minutes of sustained load, too late for a flash sale, so that is not counted on.

An item every order would read (the product, its stock level, the merchant's webhook) is kept per
container for a few seconds (shared/store/recent.py): each container reads it at most once per that
time, whatever function it runs, so its partition sees at most containers ÷ seconds reads whatever the
order rate. The containers are bounded by Lambda's concurrency (CONTAINERS, all functions together).

    .venv/bin/python -m bench.capacity
"""

import argparse
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from functions.merchant.catalog import ProductRequest
from shared.orders import Status
from shared.settings import INDEX_SHARDS, Settings
from shared.store.shards import audit_partition, due_key, held_partition, merchant_key
from shared.store.stock.items import shard_item_key, slot_pk, slot_sk

WRITES_PER_PARTITION = 1_000
READS_PER_PARTITION = 3_000
PRODUCT_GOAL, SHOP_GOAL = 10_000, 50_000
SHOP_PRODUCTS = 1_000  # the shop's orders in the shop-wide figures are spread over this many products
FLASH_SALE_STOCK_SHARDS = 32  # what docs/allocation.md advises a product expecting a flash sale to set
DEFAULT_STOCK_SHARDS = int(ProductRequest.model_fields["shards"].default)
MAX_STOCK_SHARDS = max(m.le for m in ProductRequest.model_fields["shards"].metadata if hasattr(m, "le"))
# Lambda's default concurrency per account and region: at most this many containers at once, all
# functions together (raise it with the quota, and this with it). Each keeps its own reads.
CONTAINERS = 1_000
PRODUCT_KEPT = float(Settings.model_fields["product_cache_seconds"].default)  # PRODUCT_CACHE_SECONDS
WEBHOOK_KEPT = float(Settings.model_fields["webhook_cache_seconds"].default)  # WEBHOOK_CACHE_SECONDS
Scope = Literal["product", "shop"]


@dataclass(frozen=True)
class Sale:
    """One order, as far as its keys go."""

    order_id: str
    product_id: str
    merchant_id: str
    buyer: str
    shard: int  # the stock shard its claim took (checkout tries the shards in random order)
    slot: int


@dataclass(frozen=True)
class Shards:
    stock: int
    due: int
    merchant: int
    held: int
    audit: int

    @classmethod
    def configured(cls, stock: int = DEFAULT_STOCK_SHARDS) -> "Shards":
        """The index shard counts the code runs with on AWS (shared/settings.py)."""
        shards = INDEX_SHARDS
        return cls(
            stock,
            shards["due_shards"],
            shards["merchant_order_shards"],
            shards["held_shards"],
            shards["audit_shards"],
        )

    def indexes_at(self, n: int) -> "Shards":
        return Shards(self.stock, n, n, n, n)


Key = Callable[[Sale, Shards], str]


@dataclass(frozen=True)
class Access:
    """One request of an order's hot path, on one kind of partition (accesses of a kind add up)."""

    step: str
    request: str
    partition: str  # the table or index and its partition key, as the code writes it
    key: Key
    kind: Literal["write", "read"]
    units: float  # capacity units per order (per stock shard, with `every_shard`)
    product_level: bool  # the key names the product: the shop-wide figures leave it to the product's
    blocks: bool = True  # its throttling holds up checkout, PAID or DELIVERED
    path: Literal["fresh", "pool"] = "fresh"  # pool: the claim took returned slots (rare)
    every_shard: bool = False  # made once per stock shard of the product
    # > 0: not per order but once per container and this many seconds (a read kept per container);
    # `units` is then per read, on each partition it reads
    kept: float = 0

    @property
    def per_second(self) -> float:
        """Units/s on each partition it reads, whatever the order rate (a kept read), else 0."""
        return self.units * CONTAINERS / self.kept if self.kept else 0.0


def _due(status: Status) -> Key:
    return lambda s, n: due_key(status.value, s.order_id, n.due)


def _merchant(s: Sale, n: Shards) -> str:
    return merchant_key(s.merchant_id, s.order_id, n.merchant)


def _audit(s: Sale, n: Shards) -> str:
    return audit_partition(s.product_id, s.shard, n.audit)


def _held(s: Sale, n: Shards) -> str:
    return held_partition(slot_pk(s.product_id, s.shard), slot_sk(s.slot), n.held)


def _slots(s: Sale, n: Shards) -> str:
    return slot_pk(s.product_id, s.shard)


def _shard(s: Sale, n: Shards) -> str:
    return shard_item_key(s.product_id, s.shard)[0]


def _order(s: Sale, n: Shards) -> str:
    return s.order_id


def _buyer(s: Sale, n: Shards) -> str:
    return s.buyer


def _product(s: Sale, n: Shards) -> str:
    return s.product_id


def _merchant_item(s: Sale, n: Shards) -> str:
    return s.merchant_id


# From functions/storefront/checkout.py, shared/settlement.py, functions/deliver/delivery.py,
# functions/notify/*.py and shared/store/*.py. An index gets a put when an item gains its key, a delete
# when the item loses it, both when the key changes, one write when only a projected attribute (an
# order's `status`) changes, none otherwise. The 7th field: the key names the product. `kept`: read
# through the per-container cache (shared/store/recent.py), once per container and that many seconds.
# fmt: off
ACCESSES = [
    # ProductStore.recent_product: checkout, the product page and the delivered order's page read one copy.
    Access("checkout", "GetItem product (eventually consistent; also the product and order pages)", "ShopTable product#<id>", _product, "read", 0.5, True, kept=PRODUCT_KEPT),
    Access("checkout", "PutItem buyer ticket (e-mail); the webhook deletes it", "LimitsTable <buyer key>", _buyer, "write", 2, False),
    Access("checkout", "PutItem buyer ticket (client address); the webhook deletes it", "LimitsTable <client key>", _buyer, "write", 2, False),
    # LimitStore.hold_units (shared/store/limits.py): the client's unpaid units of the product, read
    # strongly consistently and written back on its version; the webhook removes the paid order's entry.
    Access("checkout", "GetItem the client's unpaid holds of the product", "LimitsTable unpaid#<product>#<client>", _buyer, "read", 1, False),
    Access("checkout", "PutItem the holds with this order's units; the webhook writes them without", "LimitsTable unpaid#<product>#<client>", _buyer, "write", 2, False),
    Access("webhook", "GetItem the holds (the paid order's entry leaves)", "LimitsTable unpaid#<product>#<client>", _buyer, "read", 1, False, blocks=False),
    # RateStore.take (shared/store/rate.py): one conditional write per checkout; a second only when the
    # container's guess of the client's bucket was stale. Polls of the order page take one each too.
    Access("checkout", "UpdateItem the client's token bucket", "LimitsTable rate#checkout#<client>", _buyer, "write", 1, False),
    # Allocation._take writes ShardItem(pk=<product>#shard#NNNN, sk=shard): a partition per stock shard.
    Access("checkout", "UpdateItem stock shard (the claim)", "StockTable <product>#shard#<k> (shard items)", _shard, "write", 1, True),
    # At most: DynamoDB writes the index only when `audit_due` changes (a shard entering the index).
    Access("checkout", "+ `audit` entry of the claimed shard (at most)", "audit due#<k>", _audit, "write", 1, False),
    # Allocation._stamp: the claimant's name in each claimed slot (`held_at` without `held_key`: no index).
    Access("checkout", "UpdateItem stamp slot with its claimant", "StockTable <product>#slots#<shard>", _slots, "write", 1, True),
    Access("checkout", "PutItem order", "OrdersTable <order id>", _order, "write", 1, False),
    Access("checkout", "+ `due` entry; PAID moves it", "due PENDING_PAYMENT#<k>", _due(Status.PENDING_PAYMENT), "write", 2, False),
    Access("checkout", "+ list entry; PAID and DELIVERED update its status", "by_merchant_shard <merchant>#<k>", _merchant, "write", 3, False),
    Access("checkout", "+ look-up entry; PAID and DELIVERED update its status", "by_buyer <buyer>", _buyer, "write", 3, False),
    Access("webhook", "PutItem event, UpdateItem event applied", "PaymentEventsTable <provider>#<event>", _order, "write", 2, False),
    Access("webhook", "UpdateItem order → PAID", "OrdersTable <order id>", _order, "write", 1, False),
    Access("webhook", "+ `due` entry; DELIVERED removes it", "due PAID#<k>", _due(Status.PAID), "write", 2, False),
    Access("deliver", "UpdateItem bind slot", "StockTable <product>#slots#<shard>", _slots, "write", 1, True),
    Access("deliver", "+ `sold` entry", "sold <product>#<shard>", _slots, "write", 1, True),
    Access("deliver", "BatchGetItem bound codes (strongly consistent)", "StockTable <product>#slots#<shard>", _slots, "read", 1, True),
    Access("deliver", "UpdateItem order → DELIVERED", "OrdersTable <order id>", _order, "write", 1, False),
    Access("deliver", "GetItem product (merchant told)", "ShopTable product#<id>", _product, "read", 0.5, True, blocks=False, kept=PRODUCT_KEPT),
    # RecentStock: the stock level for stock.low (if a threshold is set) and the product page's number.
    Access("deliver", "BatchGetItem every stock shard (stock.low; also the product page)", "StockTable <product>#shard#<k> (shard items)", _shard, "read", 0.5, True, blocks=False, every_shard=True, kept=PRODUCT_KEPT),
    Access("deliver", "Query COUNT returned pool (stock.low; also the product page)", "returned <product>", _product, "read", 0.5, True, blocks=False, kept=PRODUCT_KEPT),
    Access("notify", "GetItem product (the buyer's mail)", "ShopTable product#<id>", _product, "read", 0.5, True, blocks=False, kept=PRODUCT_KEPT),
    # WebhookStore.recent_webhook: strongly consistent, one unit per read (it was 2 per order: 2 events).
    Access("notify", "GetItem merchant webhook (order.paid, order.delivered)", "ShopTable webhook#<merchant>", _merchant_item, "read", 1, False, blocks=False, kept=WEBHOOK_KEPT),
    Access("checkout", "UpdateItem pooled slot (holder set, leaves the pool)", "returned <product>", _product, "write", 1, True, path="pool"),
    Access("checkout", "+ `held` entry; the bind removes it", "held due#<k>", _held, "write", 2, False, path="pool"),
]
# fmt: on


@cache
def sales(count: int, products: int, shards: int, seed: int = 14) -> list[Sale]:
    """`count` orders of one merchant, spread evenly over `products`, each claim on a random shard."""
    rng = random.Random(seed)
    cursors: Counter[tuple[int, int]] = Counter()
    made = []
    for i in range(count):
        product, shard = i % products, rng.randrange(shards)
        cursors[(product, shard)] += 1
        order_id, slot = f"ord_{rng.getrandbits(80):020x}", cursors[(product, shard)]
        made.append(Sale(order_id, f"prd_{product:020x}", "mer_shop", f"buyer{i}", shard, slot))
    return made


@cache
def _busiest(key: Key, scope: Scope, shards: Shards) -> int:
    """Orders on the busiest partition `key` puts one second of orders at the goal rate on."""
    rate = PRODUCT_GOAL if scope == "product" else SHOP_GOAL
    orders = sales(rate, 1 if scope == "product" else SHOP_PRODUCTS, shards.stock)
    return max(Counter(key(s, shards) for s in orders).values())


@dataclass(frozen=True)
class Partition:
    """One kind of partition: what its busiest partition takes per order, and the ceiling that gives."""

    name: str
    kind: str
    units: float  # capacity units per order
    busiest: int  # orders on its busiest partition in one second at `rate` orders/s (0: none per order)
    rate: int
    blocks: bool
    path: str
    kept: float = 0.0  # units/s from reads kept per container: containers ÷ seconds, whatever the rate

    @property
    def load(self) -> float:
        return self.units * self.busiest + self.kept

    @property
    def ceiling(self) -> float:
        """Orders/s at which the busiest partition reaches its limit (unbounded for a key per order or
        reads kept per container within the limit; 0 if those alone exceed it)."""
        limit = _limit(self.kind)
        if self.kept >= limit:
            return 0.0
        if self.busiest <= 1:
            return float("inf")
        return (limit - self.kept) * self.rate / (self.units * self.busiest)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}s)"


def partitions(scope: Scope, shards: Shards, path: str = "fresh") -> list[Partition]:
    """Every kind of partition the orders of `scope` share, tightest first."""
    rate = PRODUCT_GOAL if scope == "product" else SHOP_GOAL
    found: dict[tuple[str, str], Partition] = {}
    for access in ACCESSES:
        if access.path not in ("fresh", path) or (scope == "shop" and access.product_level):
            continue
        name = (access.partition, access.kind)
        if access.kept:  # each container reads it once per `kept` seconds, whichever function it runs
            units, busiest, kept = 0.0, 0, access.per_second
        else:
            units = access.units * (shards.stock if access.every_shard else 1)
            busiest, kept = _busiest(access.key, scope, shards), 0.0
        before = found.get(name)
        if before is not None:  # the same partitions again: the units per order add up
            found[name] = Partition(
                *name,
                before.units + units,
                max(before.busiest, busiest),
                rate,
                before.blocks or access.blocks,
                before.path,
                max(before.kept, kept),  # one container's one copy serves all its reads
            )
        else:
            found[name] = Partition(*name, units, busiest, rate, access.blocks, access.path, kept)
    return sorted(found.values(), key=lambda p: p.ceiling)


def binding(scope: Scope, shards: Shards) -> list[Partition]:
    """The partitions whose throttling holds up checkout → PAID → DELIVERED, the one that binds first."""
    return [p for p in partitions(scope, shards) if p.blocks]


def stock_shards_for_goal() -> int | None:
    """The fewest stock shards with which one product reaches the goal (None: not within the range)."""
    enough = (
        s
        for s in range(1, MAX_STOCK_SHARDS + 1)
        if binding("product", Shards.configured(s))[0].ceiling >= PRODUCT_GOAL
    )
    return next(enough, None)


def _limit(kind: str) -> int:
    return WRITES_PER_PARTITION if kind == "write" else READS_PER_PARTITION


def containers_for(p: Partition) -> float:
    """Containers at which a partition's kept reads alone reach its limit."""
    return CONTAINERS * _limit(p.kind) / p.kept


def _n(value: float) -> str:
    return f"{value:,.0f}" if value != float("inf") else "unbounded"


def report(stock_shards: list[int], index_shards: list[int]) -> None:
    configured = Shards.configured()
    print(
        f"Per partition: {WRITES_PER_PARTITION:,} write units/s, {READS_PER_PARTITION:,} read units/s "
        "(tables and indexes alike).\n"
        f"Configured: due {configured.due}, by_merchant_shard {configured.merchant}, held {configured.held}, "
        f"audit {configured.audit} shards (shared/settings.py); stock shards per product "
        f"{DEFAULT_STOCK_SHARDS} by default, 1–{MAX_STOCK_SHARDS} (the product's `shards`).\n"
        f"Kept per container: the product and its stock level {PRODUCT_KEPT:g} s (PRODUCT_CACHE_SECONDS), "
        f"the merchant's webhook {WEBHOOK_KEPT:g} s (WEBHOOK_CACHE_SECONDS); containers: at most "
        f"{CONTAINERS:,} (Lambda's default concurrency per account and region, all functions together), "
        "each reading a kept item at most once per those seconds.\n"
    )
    print("Requests per order (quantity 1) and the partition each lands on:\n")
    print("| step | request | partition key | units |\n|---|---|---|---|")
    for a in ACCESSES:
        notes = [
            n
            for n, on in (("off the critical path", not a.blocks), ("pool claims only", a.path == "pool"))
            if on
        ]
        request = a.request + (f" ({', '.join(notes)})" if notes else "")
        units = f"{a.units:g} {a.kind}" + (" per stock shard" if a.every_shard else "")
        if a.kept:
            units += (
                f" per container per {a.kept:g} s: ≤ {a.per_second:,.0f}/s on its partition, not per order"
            )
        else:
            units += " per order"
        print(f"| {a.step} | {request} | {a.partition} | {units} |")

    print(f"\nOne product, by its stock shards S (indexes as configured; goal {PRODUCT_GOAL:,} orders/s):\n")
    print("| S | ceiling orders/s | binds | next |\n|---|---|---|---|")
    for s in stock_shards:
        first, second = binding("product", Shards.configured(s))[:2]
        print(f"| {s} | {_n(first.ceiling)} | {first} | {second} at {_n(second.ceiling)} |")

    print(
        f"\nThe shop ({SHOP_PRODUCTS:,} products of one merchant), by index shards (goal {SHOP_GOAL:,} orders/s):\n"
    )
    print("| index shards (due, by_merchant_shard, held, audit) | ceiling orders/s | binds |\n|---|---|---|")
    rows = [(f"{n}, {n}, {n}, {n}", configured.indexes_at(n)) for n in index_shards]
    c = configured
    rows.append((f"{c.due}, {c.merchant}, {c.held}, {c.audit} (configured)", configured))
    for label, shards in rows:
        top = binding("shop", shards)[0]
        print(f"| {label} | {_n(top.ceiling)} | {top} |")

    at = FLASH_SALE_STOCK_SHARDS
    print(f"\nEvery shared partition as the code is, tightest first (the product at S = {at}):\n")
    print(
        "| scope | partition key | kind | busiest partition, units/s at the goal rate | ceiling orders/s | holds up the order |"
    )
    print("|---|---|---|---|---|---|")
    scopes: list[tuple[Scope, Shards]] = [("product", Shards.configured(at)), ("shop", configured)]
    for scope, shards in scopes:
        for p in [p for p in partitions(scope, shards, path="pool") if p.busiest > 1 or p.kept]:
            holds = ("yes" if p.blocks else "no") + (", pool claims only" if p.path == "pool" else "")
            load = f"{p.load:,.0f}" + (" (kept per container, whatever the rate)" if p.kept else "")
            print(f"| {scope} | {p.name} | {p.kind} | {load} | {_n(p.ceiling)} | {holds} |")
    print("\nEvery other key is the order's, the payment event's or the buyer's own: no partition is shared.")

    shop = binding("shop", configured)[0]
    default = binding("product", Shards.configured(DEFAULT_STOCK_SHARDS))[0]
    flash = binding("product", Shards.configured(at))[0]
    needed = stock_shards_for_goal()
    pool = next(p for p in partitions("product", Shards.configured(at), path="pool") if p.path == "pool")
    kept = [p for p in partitions("product", Shards.configured(at)) if p.kept]
    tightest = max(kept, key=lambda p: p.kept / _limit(p.kind))
    print(
        f"\nGoal, the shop ≥ {SHOP_GOAL:,}/s: {_n(shop.ceiling)} at the configured index shards "
        f"({'met' if shop.ceiling >= SHOP_GOAL else 'NOT met'}; binds: {shop}).\n"
        f"Goal, one product ≥ {PRODUCT_GOAL:,}/s: "
        + (f"S ≥ {needed} reaches it" if needed else f"no S up to {MAX_STOCK_SHARDS} reaches it")
        + f"; at S = {at} (advised for a flash sale) {_n(flash.ceiling)} "
        f"({'met' if flash.ceiling >= PRODUCT_GOAL else 'NOT met'}; binds: {flash}); at the default "
        f"S = {DEFAULT_STOCK_SHARDS} {_n(default.ceiling)}.\n"
        f"Claims from the pool of returned slots (rare): {_n(pool.ceiling)}/s per product (binds: {pool}).\n"
        f"Reads kept per container: the tightest, {tightest}, reaches its partition's limit only at "
        f"{containers_for(tightest):,.0f} containers ({containers_for(tightest) / CONTAINERS:g}× the "
        f"{CONTAINERS:,} assumed), whatever the order rate."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stock-shards", default="1,4,16,22,32,64", help="stock shards per product to show")
    parser.add_argument("--index-shards", default="1,16,64,256", help="index shard counts to show")
    args = parser.parse_args()
    report([int(n) for n in args.stock_shards.split(",")], [int(n) for n in args.index_shards.split(",")])


if __name__ == "__main__":
    main()
