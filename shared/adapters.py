"""The process's adapters, built on first use (never at import time) and reused while warm."""

import logging
from dataclasses import dataclass
from functools import cache

from shared.queues import DeliveryQueue
from shared.settings import settings
from shared.store.limits import LimitStore
from shared.store.ops import OpsStore
from shared.store.orders import OrderStore
from shared.store.payment_events import PaymentEventStore
from shared.store.rate import RateStore
from shared.store.recent import RecentStock
from shared.store.shop import ShopStore
from shared.store.stock import StockStore

# botocore logs every response body at DEBUG: Secrets Manager's provider credentials, KMS's plaintext
# data keys. Those never go to logs (tests/e2e/test_no_plaintext.py), whatever the level of the rest.
logging.getLogger("botocore").setLevel(logging.INFO)


@cache
def shop() -> ShopStore:
    return ShopStore()


@cache
def stock() -> StockStore:
    return StockStore()


@cache
def recent_stock() -> RecentStock:
    """Products' stock levels as this process read them less than PRODUCT_CACHE_SECONDS ago."""
    return RecentStock(stock(), settings().product_cache_seconds)


@cache
def orders() -> OrderStore:
    return OrderStore()


@cache
def payment_events() -> PaymentEventStore:
    return PaymentEventStore()


@cache
def limits() -> LimitStore:
    return LimitStore()


@cache
def rates() -> RateStore:
    """Per-client token buckets; this process remembers the clients it refused (shared/store/rate.py)."""
    return RateStore(settings().order_token_secret)


@cache
def delivery_queue() -> DeliveryQueue:
    return DeliveryQueue()


@cache
def ops() -> OpsStore:
    return OpsStore()


@dataclass(frozen=True)
class Stores:
    """The stores and queue a payment or refund touches, passed as one."""

    orders: OrderStore
    events: PaymentEventStore
    queue: DeliveryQueue
    stock: StockStore
    shop: ShopStore
    limits: LimitStore


def stores() -> Stores:
    return Stores(orders(), payment_events(), delivery_queue(), stock(), shop(), limits())
