"""The process's adapters, built on first use (never at import time) and reused while warm."""

import logging
from datetime import datetime
from functools import cache

from shared import queues, screening
from shared.codes import CodeCipher
from shared.orders import Order, utcnow
from shared.ports import Ports
from shared.providers import PaymentProvider
from shared.queues import DeliveryQueue
from shared.risk.engine import Decision
from shared.risk.signals import Signals
from shared.settings import settings
from shared.sockets import Sockets
from shared.store.connections import ConnectionStore
from shared.store.license_keys import LicenseKeyStore
from shared.store.licenses import LicenseStore
from shared.store.limits import LimitStore
from shared.store.made import MadeCodes
from shared.store.merchants import MerchantStore
from shared.store.ops import OpsStore
from shared.store.orders import OrderStore
from shared.store.payment_events import PaymentEventStore
from shared.store.products import ProductStore
from shared.store.rate import RateStore
from shared.store.recent import RecentShops, RecentStock
from shared.store.risk_counters import RiskCounters
from shared.store.risk_rules import RiskRulesStore
from shared.store.stock.allocation import Allocation
from shared.store.stock.changes import StockChanges
from shared.store.stock.upkeep import StockUpkeep
from shared.store.upstreams import UpstreamStore
from shared.store.webhooks import WebhookStore

# botocore logs every response body at DEBUG: Secrets Manager's provider credentials, KMS's plaintext
# data keys. Those never go to logs (tests/e2e/test_no_plaintext.py), whatever the level of the rest.
logging.getLogger("botocore").setLevel(logging.INFO)
# PynamoDB logs every request's arguments at DEBUG: items as written, with buyers' e-mails and payers'
# accounts (personal data). The same: never in a log line, whatever the level.
logging.getLogger("pynamodb").setLevel(logging.INFO)


@cache
def merchants() -> MerchantStore:
    return MerchantStore()


@cache
def products() -> ProductStore:
    return ProductStore()


@cache
def webhooks() -> WebhookStore:
    return WebhookStore(merchants())


@cache
def upstreams() -> UpstreamStore:
    return UpstreamStore(merchants())


@cache
def made_codes() -> MadeCodes:
    """Generated codes' uniqueness items and capped products' counts (shared/store/made.py)."""
    return MadeCodes()


@cache
def allocation() -> Allocation:
    return Allocation()


@cache
def stock_changes() -> StockChanges:
    return StockChanges()


@cache
def stock_upkeep() -> StockUpkeep:
    return StockUpkeep(allocation())


@cache
def recent_stock() -> RecentStock:
    """Products' stock levels as this process read them less than PRODUCT_CACHE_SECONDS ago."""
    return RecentStock(allocation(), settings().product_cache_seconds, made=made_codes())


@cache
def recent_shops() -> RecentShops:
    """Shops' settings as this process read them less than PRODUCT_CACHE_SECONDS ago."""
    return RecentShops(merchants(), settings().product_cache_seconds)


@cache
def risk_rules() -> RiskRulesStore:
    """Merchants' risk rules; `recent_rules` as this process read them less than PRODUCT_CACHE_SECONDS ago."""
    return RiskRulesStore()


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


@cache
def connections() -> ConnectionStore:
    """Who watches which order over the order page's WebSocket (docs/push.md)."""
    return ConnectionStore()


@cache
def sockets() -> Sockets:
    """The WebSocket API's management API (its client made on the first post)."""
    return Sockets()


@cache
def licenses() -> LicenseStore:
    """Licenses issued, their status and activations (docs/licenses.md)."""
    return LicenseStore()


@cache
def license_keys() -> LicenseKeyStore:
    """Merchants' license signing keys, sealed under their code ciphers (docs/licenses.md)."""
    return LicenseKeyStore(cipher, cache_seconds=settings().license_key_cache_seconds)


def cipher(merchant_id: str) -> CodeCipher:
    """The merchant's code cipher (its data key opened by KMS once per process, on first use)."""
    return merchants().cipher(merchant_id)


class ConfiguredProviders:
    """The payment providers this shop is configured with (shared/providers/registry.py), looked up
    when asked: a function that never asks never reads the provider secret."""

    def provider(self, name: str) -> PaymentProvider | None:
        from shared.providers import registry  # its imports cost a cold start that never asks

        return registry.provider(name)

    def configured(self) -> list[str]:
        from shared.providers import registry

        return registry.configured()


def ports() -> Ports:
    """The real bundle (shared/ports.py): this process's stores, the queues, the configured providers
    and the wall clock. Cheap to build (the stores are made once; clients connect on first use), so a
    handler builds it per invocation; mypy checks here that each real adapter fits its port."""
    return Ports(
        orders=orders(),
        events=payment_events(),
        allocation=allocation(),
        products=products(),
        limits=limits(),
        upkeep=stock_upkeep(),
        levels=recent_stock(),
        delivery=delivery_queue(),
        notify=queues.notify_queue(),
        providers=ConfiguredProviders(),
        ciphers=cipher,
        clock=utcnow,
        upstreams=upstreams().recent_upstream,
        screen=_screen,
        screen_checkout=_screen_checkout,
        refunded=_count_refund,
        licenses=licenses(),
        license_keys=license_keys(),
        made=made_codes(),
    )


@cache
def risk_counters() -> RiskCounters:
    return RiskCounters()


def _screen_checkout(merchant_id: str, order_id: str, signals: Signals, now: datetime) -> Decision:
    return screening.screen_checkout(
        merchant_id,
        order_id,
        signals,
        risk_rules().recent_rules,
        risk_counters(),
        settings().order_token_secret,
        now,
    )


def _count_refund(order: Order) -> None:
    screening.count_refund(order, risk_counters(), settings().order_token_secret)


def _screen(order: Order, now: datetime) -> Decision:
    return screening.screen(
        order, risk_rules().recent_rules, risk_counters(), settings().order_token_secret, now
    )
