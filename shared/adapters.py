"""The process's adapters, built on first use (never at import time) and reused while warm."""

from functools import cache

from shared.queues import DeliveryQueue
from shared.store.limits import LimitStore
from shared.store.ops import OpsStore
from shared.store.orders import OrderStore
from shared.store.payment_events import PaymentEventStore
from shared.store.shop import ShopStore
from shared.store.stock import StockStore


@cache
def shop() -> ShopStore:
    return ShopStore()


@cache
def stock() -> StockStore:
    return StockStore()


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
def delivery_queue() -> DeliveryQueue:
    return DeliveryQueue()


@cache
def ops() -> OpsStore:
    return OpsStore()
