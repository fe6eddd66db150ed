"""Write shards of the index keys every order writes (docs/allocation.md, "Hot keys").

One DynamoDB partition takes ~1,000 writes/s, a global secondary index's partitions too, and a
throttled index partition throttles the table write that feeds it. So a key written per order (or
per claim) is never one value shop-wide: it is `<value>#<k>`, k one of n shards picked by a stable
hash, so every writer and every condition computes the same key. Readers query all n.

A shard count may only grow: an entry written under a shard beyond a lowered count would never be
read again. Keys written before sharding are not read: there is no deployed stack, and the stock's
shard items changed their keys in the same issue (docs/allocation.md "Hot keys").
"""

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Key = TypeVar("Key")
Entry = TypeVar("Entry")
Result = TypeVar("Result")
PARALLEL = 8  # queries in flight when a reader visits every shard (the client pools 10 connections)


def shard_of(value: str, shards: int) -> int:
    """Which of `shards` shards `value` falls in: the same in every process and every release."""
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big") % shards


def due_key(status: str, order_id: str, shards: int) -> str:
    """The `due` index partition of an order with work outstanding in `status`."""
    return f"{status}#{shard_of(order_id, shards)}"


def due_keys(status: str, shards: int) -> list[str]:
    """Every `due` partition of `status`."""
    return [f"{status}#{k}" for k in range(shards)]


def merchant_key(merchant_id: str, order_id: str, shards: int) -> str:
    """The merchant's order-list partition (`by_merchant_shard` index) that holds this order."""
    return f"{merchant_id}#{shard_of(order_id, shards)}"


def merchant_keys(merchant_id: str, shards: int) -> list[str]:
    return [f"{merchant_id}#{k}" for k in range(shards)]


def audit_partition(product_id: str, shard: int, shards: int) -> str:
    """The `audit` partition of a product's stock shard: consecutive stock shards of one product
    land in different partitions, so a product's sale spreads as its stock shards do."""
    return f"due#{(shard_of(product_id, shards) + shard) % shards}"


def held_partition(slot_pk: str, slot_sk: str, shards: int) -> str:
    """The `held` partition of a returned slot claimed again."""
    return f"due#{shard_of(f'{slot_pk}/{slot_sk}', shards)}"


def index_partitions(shards: int) -> list[str]:
    """Every partition of the `audit` or `held` index."""
    return [f"due#{k}" for k in range(shards)]


def each_shard(read: Callable[[Key], Result], keys: Sequence[Key]) -> list[Result]:
    """`read(key)` for every key, several at once (shards are independent); results in key order."""
    if len(keys) <= 1:
        return [read(key) for key in keys]
    # Workers are named after the caller, so requests counted by thread (bench/requests_counter.py)
    # are still the caller's.
    caller = threading.current_thread().name
    with ThreadPoolExecutor(
        max_workers=min(PARALLEL, len(keys)), thread_name_prefix=f"{caller}/shard"
    ) as pool:
        return list(pool.map(read, keys))


def read_every(query: Callable[[str], Iterable[Entry]], keys: Sequence[str]) -> list[Entry]:
    """Every entry `query(key)` finds, over all the keys (read several at once)."""
    return [entry for found in each_shard(lambda key: list(query(key)), keys) for entry in found]
