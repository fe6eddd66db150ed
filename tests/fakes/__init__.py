"""In-memory fakes of every port (shared/ports.py), for unit tests of the use cases: no AWS, no
network, no sleeps; a test runs in milliseconds.

    from tests.fakes import fake_ports

    fakes = fake_ports()                          # a Ports of fakes; the clock stands at T0
    product = fakes.add_product(codes=3)          # a product with 3 codes, sealed as the import seals them
    order = fakes.add_order(product, Status.PAID) # claimed, created and driven through the state table
    outcome = apply_payment(fakes.sandbox.payment(order), fakes, fakes.clock(), REDRIVE_AFTER)

`fakes` is a `Ports` (pass it, or its parts, to a use case) whose members are the fakes themselves:

- `orders` FakeOrders: the orders table. `all()`, `due_entry(id)` -> (status, deadline) or None,
  `delivery_retries(id)`, `put(order, due=None)` stores an order past every rule.
- `allocation` FakeAllocation: slots in shards, a cursor each, a pool of returned slots.
  `add_codes(product_id, codes, cipher, shards=1, copies=1)`, `levels(product_id)` (I4's counts),
  `available(product_id, shards)`, `held_by(order_id)`, `bound_to(order_id)`, and `slots`/`shards`.
- `upkeep` FakeUpkeep (burned slots, the stock audit) and `levels` FakeLevels read that same stock.
- `products` FakeProducts: `put(product)`, `change(product_id, **fields)`, `serve_stale(product)`
  (what `recent_product` answers from then on).
- `limits` FakeLimits: tickets, unit holds, daily and hourly counts. `held_tickets(order_id=None)`,
  `unpaid_units(product_id, client)`, `tickets`.
- `events` FakePaymentEvents: `applied(event)`, `owed_payments(provider)`, `refund_failed(provider)`,
  `records`.
- `delivery` FakeDeliveryQueue: `sent` (order ids). `notify` FakeNotifyQueue: `events(type_=None)`
  (merchant events), `mails()` (buyers' mail requests), `messages`.
- `providers` FakeProviders: `providers["sandbox"]` (also `fakes.sandbox`) is a FakePaymentProvider:
  `error` (raised by every call while set: `ProviderUnavailable(...)` for a provider that is down),
  `refund_answer`, `settle_refund(refund_id, state)`, `payment(order, amount=, currency=, payment_id=,
  event_id=, order_id=)` (a verified payment event, the order's exact total by default), `pay(order)`
  (the same, and a query reports it), `refund_event(order, ...)`, and `started`, `refunds`,
  `refunds_sent`.
- `ciphers` FakeCiphers (a merchant's code cipher), `clock` FixedClock (`advance(minutes=16)`).

Outside the bundle (only the socket and push functions use them; tests/fakes/sockets.py):
`FakeConnections()` (the connections table: `connections`, `slots`, `client_connections(client)`) and
`FakeSockets()` (the management API: `posted`, `messages(connection_id)`, `closed`, and `gone`, the
connections that answer 410).

Every fake keeps the real store's contract, not its mechanics: the same conditional writes refused
with the same errors (StateConflict, AlreadyApplied, OutOfStock, IntegrityViolation), the same
idempotent repeats. Each port method is logged (`fake.calls`, `fake.called("release")`) and can be
hooked: `fakes.orders.before("transition", raises(StateConflict("...")), times=1)` fails the next
transition before it writes; `after(...)` fails it after it applied (a lost answer); an action may
also change state in between (another writer came first). Set-up through the helpers below is
neither logged nor hooked. Crash points (shared/faults.py) fire in the fakes as in the real stores.

Helpers on `fakes`: `add_product(codes=5, *, shards=1, price=1000, currency="CNY", copies=1,
**product_fields)`, `add_order(product, status=PENDING_PAYMENT, *, quantity=None, email=, provider="sandbox",
tickets=(), order_id=None)` (EXPIRED: its stock already returned, as after a whole expiry run; PAID:
its payment event recorded and applied, and known to the provider), `new_id(prefix)`, `quietly()`.
"""

import contextlib
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from shared.money import Money
from shared.orders import Order, Payment, Status, Ticket, chain_event
from shared.ports import Ports
from shared.products import Product
from tests.fakes.hooks import Call, Hooked, hooked, raises
from tests.fakes.orders import FakeOrders
from tests.fakes.outside import (
    FakeCiphers,
    FakeDeliveryQueue,
    FakeNotifyQueue,
    FakePaymentProvider,
    FakeProviders,
    FixedClock,
    default_payment_id,
)
from tests.fakes.shop import EventRecord, FakeLimits, FakePaymentEvents, FakeProducts
from tests.fakes.sockets import FakeConnections, FakeSockets
from tests.fakes.stock import FakeAllocation, FakeLevels, FakeSlot, FakeUpkeep

__all__ = [
    "BASE_URL",
    "MERCHANT_ID",
    "REDRIVE_AFTER",
    "RESERVATION",
    "T0",
    "Call",
    "EventRecord",
    "FakeAllocation",
    "FakeCiphers",
    "FakeConnections",
    "FakeDeliveryQueue",
    "FakeLevels",
    "FakeLimits",
    "FakeNotifyQueue",
    "FakeOrders",
    "FakePaymentEvents",
    "FakePaymentProvider",
    "FakePorts",
    "FakeProducts",
    "FakeProviders",
    "FakeSlot",
    "FakeSockets",
    "FakeUpkeep",
    "FixedClock",
    "Hooked",
    "fake_ports",
    "hooked",
    "default_payment_id",
    "raises",
]

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
MERCHANT_ID = f"mer_{1:020x}"
RESERVATION = timedelta(minutes=15)  # the RESERVATION_MINUTES default
REDRIVE_AFTER = timedelta(minutes=2)  # as reconcile and the webhook pass REDRIVE_AFTER_SECONDS
BASE_URL = "https://shop.test"

# The events that take a new order to each state, as the use cases write them: (event, due again in).
_PATHS: dict[Status, tuple[str, ...]] = {
    Status.PENDING_PAYMENT: (),
    Status.PAID: ("payment.succeeded",),
    Status.DELIVERED: ("payment.succeeded", "order.delivered"),
    Status.IN_REVIEW: ("payment.succeeded", "review.held"),
    Status.REFUNDING: ("payment.succeeded", "refund.requested"),
    Status.REFUNDED: ("payment.succeeded", "refund.requested", "refund.confirmed"),
    Status.EXPIRED: ("reservation.expired",),
    Status.CLAIMED: ("payment.succeeded", "order.delivered", "claim.opened"),
    Status.REPLACED: ("payment.succeeded", "order.delivered", "claim.opened", "claim.replaced"),
}
_DUE_IN: dict[str, timedelta | None] = {
    "payment.succeeded": REDRIVE_AFTER,
    "review.held": timedelta(0),
    "refund.requested": timedelta(0),
    "reservation.expired": timedelta(0),
}


@dataclass(frozen=True)
class FakePorts(Ports):
    orders: FakeOrders
    events: FakePaymentEvents
    allocation: FakeAllocation
    products: FakeProducts
    limits: FakeLimits
    upkeep: FakeUpkeep
    levels: FakeLevels
    delivery: FakeDeliveryQueue
    notify: FakeNotifyQueue
    providers: FakeProviders
    ciphers: FakeCiphers
    clock: FixedClock
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False, compare=False)

    @property
    def sandbox(self) -> FakePaymentProvider:
        return self.providers["sandbox"]

    def fakes(self) -> list[Hooked]:
        """Every fake in the bundle, each provider too."""
        members = [getattr(self, spec.name) for spec in fields(self)]
        return [f for f in members if isinstance(f, Hooked)] + list(self.providers.by_name.values())

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Calls made meanwhile, to any fake, are neither logged nor hooked (a test's set-up)."""
        with contextlib.ExitStack() as stack:
            for fake in self.fakes():
                stack.enter_context(fake.quietly())
            yield

    def new_id(self, prefix: str) -> str:
        """An id as the shop issues them (`<prefix>_<20 hex digits>`), counted from 1."""
        return f"{prefix}_{next(self._ids):020x}"

    def add_product(
        self,
        codes: int | Sequence[str] = 5,
        *,
        shards: int = 1,
        price: int = 1000,
        currency: str = "CNY",
        copies: int = 1,
        **details: object,
    ) -> Product:
        """An active product of MERCHANT_ID with these codes (or this many made up) in stock."""
        product_id = self.new_id("prd")
        product = Product.model_validate(
            {
                "product_id": product_id,
                "merchant_id": MERCHANT_ID,
                "name": "Game card",
                "description": "A code for a game",
                "price": Money(amount=price, currency=currency),
                "delivery": "stock",
                "max_per_order": 10,
                "shards": shards,
                "active": True,
                "created_at": self.clock(),
                "sales_per_code": copies,
                **details,
            }
        )
        self.products.put(product)
        made = [f"CODE-{product_id[-4:]}-{n}" for n in range(codes)] if isinstance(codes, int) else codes
        self.allocation.add_codes(product_id, made, self.ciphers(product.merchant_id), shards, copies)
        return product

    def add_order(
        self,
        product: Product,
        status: Status = Status.PENDING_PAYMENT,
        *,
        quantity: int | None = None,
        email: str = "buyer@example.com",
        provider: str = "sandbox",
        tickets: Sequence[Ticket] = (),
        order_id: str | None = None,
    ) -> Order:
        """An order as checkout creates it (its slots claimed now), then driven to `status` through
        the state table as the use cases drive it, at the clock's time."""
        with self.quietly():
            order_id = order_id or self.new_id("ord")
            quantity = quantity or product.min_per_order
            now = self.clock()
            slots = self.allocation.claim(product.product_id, product.shards, quantity, order_id)
            order = Order(
                order_id=order_id,
                merchant_id=product.merchant_id,
                product_id=product.product_id,
                quantity=quantity,
                total=product.total_for(quantity),
                email=email,
                provider=provider,
                status=Status.PENDING_PAYMENT,
                access_token_hash=hashlib.sha256(f"token-{order_id}".encode()).hexdigest(),
                created_at=now,
                expires_at=now + RESERVATION,
                slots=slots,
                history=[chain_event(order_id, [], "order.created", now, {"quantity": quantity})],
                tickets=list(tickets),
            )
            self.orders.create(order)
            for step in _PATHS[status]:
                order = self._step(order, step)
        return order

    def _step(self, order: Order, event_type: str) -> Order:
        now = self.clock()
        payment = None
        facts: dict[str, str] = {}
        if event_type == "payment.succeeded":
            known = self.providers.by_name.get(order.provider)
            event = (known or FakePaymentProvider(order.provider)).pay(order)
            self.events.record(event)
            self.events.mark_applied(event)
            payment = Payment(
                provider=event.provider,
                payment_id=event.payment_id,
                event_id=event.event_id,
                amount=event.amount,
            )
            facts = {"provider": payment.provider, "payment_id": payment.payment_id}
        elif event_type == "order.delivered":
            self.allocation.bind(order.product_id, order.slots, order.order_id)
        order = self.orders.transition(
            order, event_type, now, facts, payment=payment, due_in=_DUE_IN.get(event_type)
        )
        if event_type == "payment.succeeded":
            for ticket in order.tickets:
                self.limits.give_back(ticket, order.order_id)
        elif event_type in ("refund.requested", "reservation.expired"):
            self.allocation.release(order.product_id, order.slots, order.order_id)
            if event_type == "reservation.expired":
                self.orders.clear_due(order.order_id, Status.EXPIRED)
        return order


def fake_ports(now: datetime = T0, providers: Sequence[str] = ("sandbox",)) -> FakePorts:
    """A Ports of fresh fakes, the clock standing at `now`, with these payment providers configured."""
    clock = FixedClock(now)
    allocation = FakeAllocation(clock)
    return FakePorts(
        orders=FakeOrders(),
        events=FakePaymentEvents(clock),
        allocation=allocation,
        products=FakeProducts(),
        limits=FakeLimits(clock),
        upkeep=FakeUpkeep(allocation),
        levels=FakeLevels(allocation),
        delivery=FakeDeliveryQueue(),
        notify=FakeNotifyQueue(),
        providers=FakeProviders(FakePaymentProvider(name) for name in providers),
        ciphers=FakeCiphers(),
        clock=clock,
    )


def stored(fakes: FakePorts, order: Order) -> Order:
    """The order as the fake orders table holds it now."""
    found = fakes.orders.get(order.order_id)
    assert found is not None
    return found


def history(fakes: FakePorts, order: Order) -> list[str]:
    """The types of the stored order's history entries, oldest first."""
    return [event.type for event in stored(fakes, order).history]


# What a Settings needs outside Lambda (shared/settings.py's required ones): a test's own Settings is
# `Settings.model_validate({**REQUIRED_SETTINGS, ...its own})`.
REQUIRED_SETTINGS = {
    "ORDERS_TABLE": "orders",
    "STOCK_TABLE": "stock",
    "SHOP_TABLE": "shop",
    "PAYMENT_EVENTS_TABLE": "payment-events",
    "LIMITS_TABLE": "limits",
    "OPS_TABLE": "ops",
    "DELIVERY_QUEUE_URL": "https://sqs.example/queue",
    "CODES_KEY_ID": "alias/miaofa-codes",
    "PUBLIC_BASE_URL": "https://shop.example",
    "ORDER_TOKEN_SECRET": "ots_k3Jq9wXz2Lm8Pn4Rv7Ty",
}
