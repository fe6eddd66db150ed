"""The key design against DynamoDB's partition limits (bench/capacity.py): the configured shard counts
carry the goal rates, and every index key spreads over exactly its configured shards."""

import pytest

from bench.capacity import (
    ACCESSES,
    DEFAULT_STOCK_SHARDS,
    FLASH_SALE_STOCK_SHARDS,
    PRODUCT_GOAL,
    SHOP_GOAL,
    Shards,
    binding,
    partitions,
    stock_shards_for_goal,
)
from shared.settings import INDEX_SHARDS
from shared.store.shards import (
    audit_partition,
    due_key,
    due_keys,
    held_partition,
    index_partitions,
    merchant_key,
    merchant_keys,
)

ORDERS = [f"ord_{n:020x}" for n in range(20_000)]


def test_the_shop_reaches_its_goal_at_the_configured_index_shards():
    top = binding("shop", Shards.configured())[0]
    assert top.ceiling >= SHOP_GOAL, f"{top} caps the shop at {top.ceiling:,.0f} orders/s"


def test_fewer_index_shards_would_miss_the_goal():
    """The check above can fail: the index keys bind when their shards are too few."""
    assert binding("shop", Shards.configured().indexes_at(64))[0].ceiling < SHOP_GOAL


def test_one_product_reaches_its_goal_at_flash_sale_stock_shards():
    top = binding("product", Shards.configured(FLASH_SALE_STOCK_SHARDS))[0]
    assert top.ceiling >= PRODUCT_GOAL, f"{top} caps one product at {top.ceiling:,.0f} orders/s"


def test_fewer_stock_shards_would_miss_the_goal_and_the_default_is_for_ordinary_products():
    """The check above can fail: with too few stock shards a product's slot items bind (22 needed)."""
    needed = stock_shards_for_goal()
    assert needed is not None and needed <= FLASH_SALE_STOCK_SHARDS
    assert binding("product", Shards.configured(needed - 1))[0].ceiling < PRODUCT_GOAL
    assert binding("product", Shards.configured(DEFAULT_STOCK_SHARDS))[0].ceiling < PRODUCT_GOAL


def test_reads_kept_per_container_stay_within_their_partitions_at_lambdas_concurrency():
    """The product, its stock level and the merchant's webhook are read once per container and TTL:
    their partitions' load is bounded by the containers, not the order rate, and never binds."""
    for scope, shards in (
        ("product", Shards.configured(FLASH_SALE_STOCK_SHARDS)),
        ("shop", Shards.configured()),
    ):
        kept = [p for p in partitions(scope, shards) if p.kept]
        assert kept and all(p.ceiling == float("inf") for p in kept), kept
    # The reads still made per order: the delivery's of its own codes, spread like the slots, and the
    # client's unpaid holds (a partition per product and client: only the client's own orders meet).
    assert {a.partition for a in ACCESSES if a.kind == "read" and not a.kept} == {
        "StockTable <product>#slots#<shard>",
        "LimitsTable unpaid#<product>#<client>",
    }


@pytest.mark.parametrize("n", [1, 4, INDEX_SHARDS["due_shards"]])
def test_due_entries_spread_over_every_shard_and_readers_read_them_all(n):
    written = {due_key("PAID", order_id, n) for order_id in ORDERS}
    assert len(written) == n
    assert written == set(due_keys("PAID", n))
    assert all(key.startswith("PAID#") for key in written)  # what the conditions match


@pytest.mark.parametrize("n", [1, 4, INDEX_SHARDS["merchant_order_shards"]])
def test_a_merchants_orders_spread_over_every_shard(n):
    written = {merchant_key("mer_a", order_id, n) for order_id in ORDERS}
    assert written == set(merchant_keys("mer_a", n))


def test_a_products_stock_shards_land_in_distinct_audit_partitions():
    n = INDEX_SHARDS["audit_shards"]
    assert len({audit_partition("prd_x", shard, n) for shard in range(64)}) == 64
    assert {audit_partition(f"prd_{p}", 0, n) for p in range(5_000)} == set(index_partitions(n))


def test_holds_spread_over_every_held_partition():
    n = INDEX_SHARDS["held_shards"]
    written = {held_partition(f"prd_x#slots#{s % 16}", f"{s:012d}", n) for s in range(20_000)}
    assert written == set(index_partitions(n))
