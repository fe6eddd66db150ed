"""The ports the use cases work through: what each needs of a store, a queue, a payment provider and
the clock, and `Ports`, the bundle of them that a handler builds and hands to its use cases.

Each Protocol names exactly the methods the use cases call, with the real store's signature and
contract (its docstring in shared/store/ is the contract). The real bundle is built by
`shared.adapters.ports()`; mypy checks there that every real store, queue and registry satisfies its
port. The unit tests' in-memory bundle is `tests.fakes.fake_ports()` (docs/architecture.md, "Ports").
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.codes import CodeCipher
from shared.generated import CSPRNG, Pattern
from shared.notify import Notification
from shared.orders import Order, Payment, SlotRange, Status, Ticket
from shared.payments import PaymentEvent
from shared.products import Product
from shared.providers import PaymentProvider
from shared.queues import NotifyMessage
from shared.store.connections import WatchOutcome
from shared.store.orders import DueEntry
from shared.store.payment_events import OwedPayment
from shared.store.stock.upkeep import Claimants
from shared.store.upstreams import UpstreamConfig

if TYPE_CHECKING:
    from shared.licensing import LicenseKeys, LicenseRecords
    from shared.risk.engine import Decision
    from shared.risk.signals import Signals

# ---------- stores ----------


class OrderPort(Protocol):
    """Orders and their state changes (shared/store/orders.py): every change is conditional on the
    state it leaves (StateConflict if the order changed since it was read)."""

    def create(self, order: Order) -> None:
        """Write a new order; AlreadyApplied if one with its id exists."""
        ...

    def get(self, order_id: str) -> Order | None: ...

    def get_many(self, order_ids: set[str]) -> list[Order]: ...

    def transition(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        payment: Payment | None = None,
        due_in: timedelta | None = None,
        slots: list[SlotRange] | None = None,
        fulfilment: bytes | None = None,
    ) -> Order:
        """Move the order along the state table and append the event; due again in `due_in` (None:
        nothing outstanding); `fulfilment`: a manual order's sealed delivery. StateConflict if the table
        has no such move or the order changed."""
        ...

    def note(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        fulfilment: bytes | None = None,
    ) -> Order:
        """Append a fact (shared.orders.NOTES) to the history, the state and deadlines untouched
        (`fulfilment`: the order's sealed delivery replaced in the same write); StateConflict if the
        order changed."""
        ...

    def due(self, status: Status, before: datetime, limit: int | None = 100) -> list[str]: ...

    def outstanding(
        self, status: Status, before: datetime | None = None, limit: int | None = None
    ) -> list[DueEntry]: ...

    def take_redrive(self, entry: DueEntry, until: datetime) -> int | None: ...

    def record_delivery_failure(self, order_id: str, error: str, at: datetime) -> None: ...

    def count_delivery_retry(self, order_id: str, attempt: str) -> int | None: ...

    def record_refund_failure(self, order_id: str, error: str, retry_at: datetime) -> None: ...

    def next_refund_attempt(self, order: Order) -> bool: ...

    def clear_due(self, order_id: str, status: Status) -> None: ...

    def postpone(self, order_id: str, status: Status, until: datetime) -> None: ...


class AllocationPort(Protocol):
    """A product's slots as orders claim, release and bind them (shared/store/stock/allocation.py)."""

    def claim(
        self, product_id: str, shards: int, quantity: int, order_id: str, avoid: Sequence[SlotRange] = ()
    ) -> list[SlotRange]:
        """Reserve `quantity` slots for the order, all or nothing; OutOfStock if there are not enough."""
        ...

    def release(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> int:
        """Give the order's unbound slots back to stock (only those it still holds); how many went back."""
        ...

    def release_unkept(
        self, product_id: str, claimed: Sequence[SlotRange], kept: Sequence[SlotRange], order_id: str
    ) -> int: ...

    def bind(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> None:
        """Bind each slot to the order (I1); IntegrityViolation if one is missing or another's."""
        ...

    def read_codes(
        self, product_id: str, ranges: Sequence[SlotRange], order_id: str, cipher: CodeCipher
    ) -> list[str]:
        """The codes bound to the order, decrypted; IntegrityViolation for a slot not bound to it."""
        ...


class StockUpkeepPort(Protocol):
    """Reconciliation's upkeep of the stock (shared/store/stock/upkeep.py): burned slots, the audit."""

    def shards_due(self) -> dict[str, list[int]]: ...

    def return_burned(
        self, product_id: str, shard: int, now: int, grace: int, claimants: Claimants, keep_due: bool = False
    ) -> int:
        """Return the shard's burned slots; `keep_due`: leave it in the audit index whatever it finds."""
        ...

    def return_abandoned_holds(self, now: int, grace: int, claimants: Claimants) -> int: ...

    def audit(
        self, product_id: str, shards: int, claimants: Claimants | None = None, now: int = 0, grace: int = 300
    ) -> list[str]: ...

    def audit_holds(self, claimants: Claimants, now: int, grace: int) -> dict[str, list[str]]: ...


class MadeCodePort(Protocol):
    """Codes made per order (shared/store/made.py): each unique per product, a cap counted exactly."""

    def record(self, product_id: str, fingerprint: str, order_id: str, unit: int, at: datetime) -> bool:
        """True if the code with this fingerprint is (now or already) this unit's; False if another's."""
        ...

    def take(self, product_id: str, cap: int, units: int, order_id: str) -> bool:
        """Count the order's `units` more codes made if that stays within `cap` (True also if this
        order's own take is the last one counted); False, nothing counted, if not."""
        ...

    def made(self, product_id: str) -> int:
        """How many codes the capped product has counted (0 before its first)."""
        ...


class StockLevelPort(Protocol):
    """A product's available stock, as this process read it a moment ago (shared/store/recent.py)."""

    def available(self, product: Product) -> int: ...

    def left(self, product: Product) -> int | None:
        """How many a buyer may still order (None: never sold out), for the pages."""
        ...


class ProductPort(Protocol):
    """Products (shared/store/products.py)."""

    def product(self, product_id: str, consistent: bool = False) -> Product | None: ...

    def recent_product(self, product_id: str) -> Product | None:
        """The product as this process read it less than PRODUCT_CACHE_SECONDS ago."""
        ...


class LimitPort(Protocol):
    """Caps on unpaid orders, unpaid units and daily purchases per buyer (shared/store/limits.py)."""

    def take(self, key: str, cap: int, order_id: str, until: int) -> Ticket | None: ...

    def give_back(self, ticket: Ticket, order_id: str, call: str | None = None) -> None: ...

    def paid_today(self, product_id: str, email: str, day: date) -> int: ...

    def hold_units(
        self,
        product_id: str,
        client: str,
        email: str,
        order_id: str,
        call: str,
        units: int,
        bounds: tuple[int, int | None],
        until: int,
    ) -> Ticket | Literal["client", "email"]: ...

    def count_paid(
        self, product_id: str, email: str, day: date, units: int, limit: int, order_id: str
    ) -> bool: ...

    def take_hourly(self, key: str, limit: int, now: int) -> bool: ...


class PaymentEventPort(Protocol):
    """Provider events recorded once (I5), and payments owed back (shared/store/payment_events.py)."""

    def record(self, event: PaymentEvent) -> bool:
        """Record the event; False if it was applied already."""
        ...

    def mark_applied(self, event: PaymentEvent) -> None: ...

    def mark_needs_refund(self, event: PaymentEvent) -> None: ...

    def owed(self, provider: str, limit: int | None = 100) -> list[OwedPayment]: ...

    def mark_refund_failed(self, event_key: str, provider: str, reason: str) -> None: ...

    def settle_owed(self, provider: str, order_id: str, payment_id: str) -> None: ...

    def mark_refunded(self, event_key: str) -> None: ...


class ConnectionPort(Protocol):
    """Who watches which order over the order page's WebSocket (shared/store/connections.py): the caps
    taken exactly under concurrency, every write safe to repeat."""

    def connect(self, connection_id: str, client: str, cap: int, now: int, until: int) -> bool:
        """Record a new connection from `client` (a client key); False if it has `cap` live ones."""
        ...

    def watch(self, connection_id: str, order_id: str, cap: int, now: int) -> WatchOutcome:
        """The connection watches the order: `full` if `cap` others watch it, `refused` if the
        connection is not live or watches an order already (a connection watches once)."""
        ...

    def watchers(self, order_id: str, now: int) -> list[str]:
        """The connections watching the order now."""
        ...

    def unwatch(self, order_id: str, connection_id: str) -> None:
        """The connection no longer watches the order; a repeat does nothing."""
        ...

    def forget(self, connection_id: str) -> None:
        """Free the connection's slots (its client's and its order's); a repeat does nothing."""
        ...

    def client_key(self, client: str) -> str:
        """The partition of a client's connection slots."""
        ...

    def order_partition(self, order_id: str) -> str:
        """The partition of an order's watcher slots."""
        ...

    def free_gone(self, partition: str, alive: Callable[[str], bool], now: int) -> int:
        """Free the slots of `partition` (`client_key(client)` or `order_partition(order)`) held by
        connections `alive` says are gone (their $disconnect was lost); how many were freed."""
        ...


# ---------- queues ----------


class DeliveryQueuePort(Protocol):
    """The delivery queue: a PAID order's id for the deliver function (shared/queues.py)."""

    def send(self, order_id: str) -> None: ...


class NotifyPort(Protocol):
    """The notify queue: merchant events and buyers' mail (shared/queues.py). Use cases send through
    `queues.publish`, `emit` and `request_mail`, which never fail what caused the message."""

    def send(self, notification: Notification) -> None: ...

    def send_body(self, message: NotifyMessage) -> None: ...


# ---------- outside ----------


class SocketChannel(Protocol):
    """The WebSocket connections themselves (shared/sockets.py: API Gateway's management API)."""

    def post(self, connection_id: str, message: dict[str, str]) -> bool:
        """Send one JSON message; False if the connection is gone (410)."""
        ...

    def close(self, connection_id: str) -> None: ...

    def alive(self, connection_id: str) -> bool:
        """Whether the connection is still open; False once it is gone (410)."""
        ...


# The configured payment provider called so, or None (shared/providers/registry.py).
ProviderLookup = Callable[[str], PaymentProvider | None]


class PaymentProviders(Protocol):
    """The payment providers this shop is configured with."""

    def provider(self, name: str) -> PaymentProvider | None: ...

    def configured(self) -> list[str]: ...


Ciphers = Callable[[str], CodeCipher]  # a merchant id -> its code cipher (MerchantStore.cipher)
Clock = Callable[[], datetime]  # now, timezone-aware UTC
# (merchant id, the order id it would get, the checkout's signals, now) -> the merchant's risk rules'
# decision about the checkout, the order counted on the identifiers they count (shared/screening.py)
CheckoutScreen = Callable[[str, str, "Signals", datetime], "Decision"]


@dataclass(frozen=True)
class Ports:
    """Everything a use case may touch outside its own rules, passed as one (or as its parts)."""

    orders: OrderPort
    events: PaymentEventPort
    allocation: AllocationPort
    products: ProductPort
    limits: LimitPort
    upkeep: StockUpkeepPort
    levels: StockLevelPort
    delivery: DeliveryQueuePort
    notify: NotifyPort
    providers: PaymentProviders
    ciphers: Ciphers
    clock: Clock
    # (merchant id, upstream name) -> that upstream of the merchant's (docs/topup.md), or None
    upstreams: Callable[[str, str], UpstreamConfig | None] = lambda merchant_id, name: None
    # A PAID order -> its merchant's risk rules' decision (shared/screening.py); None: not screened
    screen: Callable[[Order, datetime], "Decision | None"] = lambda order, now: None
    screen_checkout: CheckoutScreen | None = None  # None: checkouts not screened
    # A REFUNDED order -> counted in its payer's history for the risk rules (shared/screening.py)
    refunded: Callable[[Order], None] = lambda order: None
    # Licenses issued and their status (shared/store/licenses.py), and merchants' license signing keys
    # (shared/store/license_keys.py); None: this bundle issues and revokes no license.
    licenses: "LicenseRecords | None" = None
    license_keys: "LicenseKeys | None" = None
    # Generated codes' uniqueness and cap (functions/deliver/generated.py); None: not wired (unit fakes)
    made: MadeCodePort | None = None
    # A fresh code of a pattern: the CSPRNG's (a test may draw codes it chooses, to force a collision)
    draw: Callable[[Pattern], str] = lambda pattern: pattern.generate(CSPRNG)
