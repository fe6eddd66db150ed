"""Products, buyers' limits and provider events in memory, with the contracts of
shared/store/products.py, limits.py and payment_events.py: a ticket is held until given back by its
order or until its `until` passes, a client's unpaid units and an e-mail's daily count never exceed
their bounds, a payment counts once per order, and an event is applied once (I5)."""

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from shared.money import Money
from shared.orders import Ticket
from shared.payments import PaymentEvent
from shared.ports import Clock
from shared.products import Product
from shared.store.limits import HOLD_SK, MAX_COUNTED, Holds, buyer_key, hold_ticket
from shared.store.payment_events import OwedPayment
from tests.fakes.hooks import Hooked, hooked


class FakeProducts(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self._products: dict[str, Product] = {}
        self._recent: dict[str, Product | None] = {}

    @hooked
    def product(self, product_id: str, consistent: bool = False) -> Product | None:
        return self._products.get(product_id)

    @hooked
    def recent_product(self, product_id: str) -> Product | None:
        if product_id in self._recent:
            return self._recent[product_id]
        return self._products.get(product_id)

    # ---------- for tests ----------

    def put(self, product: Product) -> Product:
        self._products[product.product_id] = product
        return product

    def change(self, product_id: str, **fields: Any) -> Product:
        """Change the stored product (as a merchant's PATCH would); `recent_product` sees it too,
        unless `serve_stale` froze what this process read."""
        return self.put(self._products[product_id].model_copy(update=fields))

    def serve_stale(self, product: Product | None, product_id: str | None = None) -> None:
        """What `recent_product` returns from now on for the product (the one read a moment ago, or
        None as read before it existed), whatever the store holds."""
        self._recent[product.product_id if product is not None else str(product_id)] = product


@dataclass
class _Counter:
    units: int = 0
    tokens: frozenset[str] = frozenset()


class FakeLimits(Hooked):
    """Tickets by key, unit holds by (product, client), counters by (key, day or hour). Time is the
    clock's, where the real store reads the machine's."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self.tickets: dict[tuple[str, str], tuple[str, int]] = {}  # (key, sk) -> (order id, until)
        self._holds: dict[
            str, dict[str, tuple[int, int, str]]
        ] = {}  # pk -> {<order>#<call>: (units, until, e-mail key)}
        self._counters: dict[tuple[str, str], _Counter] = {}

    def _now(self) -> int:
        return int(self._clock().timestamp())

    # ---------- the port (shared/ports.py, LimitPort) ----------

    @hooked
    def take(self, key: str, cap: int, order_id: str, until: int) -> Ticket | None:
        now = self._now()
        for number in range(cap):
            sk = f"{number:06d}"
            held = self.tickets.get((key, sk))
            if held is None or held[1] < now:
                self.tickets[(key, sk)] = (order_id, until)
                return Ticket(pk=key, sk=sk)
        return None

    @hooked
    def give_back(self, ticket: Ticket, order_id: str, call: str | None = None) -> None:
        if ticket.sk == HOLD_SK:
            self._unhold(ticket.pk, order_id, call)
        elif (held := self.tickets.get((ticket.pk, ticket.sk))) is not None and held[0] == order_id:
            del self.tickets[(ticket.pk, ticket.sk)]

    @hooked
    def paid_today(self, product_id: str, email: str, day: date) -> int:
        return self._counters.get(_daily(product_id, email, day), _Counter()).units

    @hooked
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
    ) -> Ticket | Literal["client", "email"]:
        mail, entry = buyer_key("email", email), f"{order_id}#{call}"
        held = self.holds(product_id, client, self._now())
        if entry in held.entries:
            return hold_ticket(product_id, client)
        if held.units() + units > bounds[0]:
            return "client"
        if bounds[1] is not None and held.units(mail) + units > bounds[1]:
            return "email"
        self._holds[held.pk] = {**held.entries, entry: (units, until, mail)}
        return hold_ticket(product_id, client)

    @hooked
    def count_paid(
        self, product_id: str, email: str, day: date, units: int, limit: int, order_id: str
    ) -> bool:
        return self._add_within(_daily(product_id, email, day), units, limit, token=order_id)

    @hooked
    def take_hourly(self, key: str, limit: int, now: int) -> bool:
        return self._add_within((f"hourly#{key}", str(now // 3600)), 1, limit, token=secrets.token_hex(8))

    # ---------- also the real store's ----------

    def holds(self, product_id: str, client: str, now: int) -> Holds:
        """What `client` holds unpaid of the product: live entries only."""
        pk = hold_ticket(product_id, client).pk
        entries = self._holds.get(pk, {})
        return Holds(pk, 0, {entry: held for entry, held in entries.items() if held[1] > now})

    # ---------- for tests ----------

    def held_tickets(self, order_id: str | None = None) -> list[Ticket]:
        """Tickets held now (by `order_id`, if given), unit holds left out."""
        now = self._now()
        return [
            Ticket(pk=pk, sk=sk)
            for (pk, sk), (holder, until) in sorted(self.tickets.items())
            if until >= now and (order_id is None or holder == order_id)
        ]

    def unpaid_units(self, product_id: str, client: str) -> int:
        return self.holds(product_id, client, self._now()).units()

    # ---------- as the real store does it ----------

    def _unhold(self, pk: str, order_id: str, call: str | None) -> None:
        entries = self._holds.get(pk)
        if not entries:
            return
        gone = {k for k in entries if (k == f"{order_id}#{call}" if call else k.startswith(f"{order_id}#"))}
        if gone:
            now = self._now()
            self._holds[pk] = {k: held for k, held in entries.items() if k not in gone and held[1] > now}

    def _add_within(self, key: tuple[str, str], units: int, limit: int, token: str) -> bool:
        """Add the units under the call's token if the total stays within `limit`; a token already
        counted (a retried write that applied) answers True and adds nothing."""
        if units > limit:
            return False
        counter = self._counters.setdefault(key, _Counter())
        if token in counter.tokens:
            return True
        if counter.units > limit - units or len(counter.tokens) >= MAX_COUNTED:
            return False
        counter.units += units
        counter.tokens = counter.tokens | {token}
        return True


def _daily(product_id: str, email: str, day: date) -> tuple[str, str]:
    return f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat()


@dataclass
class EventRecord:
    """A provider event as recorded (or a payment owed back, under `owed#<provider>#<payment id>`)."""

    order_id: str
    payment_id: str
    applied: bool
    received_at: datetime
    amount: Money | None = None
    refund_due: str | None = None  # the provider while owed back, `<provider>#failed` once refused
    refund_error: str | None = None


class FakePaymentEvents(Hooked):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self.records: dict[str, EventRecord] = {}  # by event key, as the real table

    # ---------- the port (shared/ports.py, PaymentEventPort) ----------

    @hooked
    def record(self, event: PaymentEvent) -> bool:
        existing = self.records.get(_key(event))
        if existing is not None:
            return not existing.applied
        self.records[_key(event)] = EventRecord(event.order_id, event.payment_id, False, self._clock())
        return True

    @hooked
    def mark_applied(self, event: PaymentEvent) -> None:
        record = self.records.setdefault(
            _key(event), EventRecord(event.order_id, event.payment_id, False, self._clock())
        )
        record.applied = True

    @hooked
    def mark_needs_refund(self, event: PaymentEvent) -> None:
        key = _owed_key(event.provider, event.payment_id)
        if key not in self.records:  # owed once per payment, however many events report it
            self.records[key] = EventRecord(
                event.order_id, event.payment_id, True, self._clock(), event.amount, refund_due=event.provider
            )

    @hooked
    def owed(self, provider: str, limit: int | None = 100) -> list[OwedPayment]:
        return self._owed(provider, limit)

    def _owed(self, provider: str, limit: int | None) -> list[OwedPayment]:
        owed = [
            OwedPayment(
                event_key=key,
                order_id=record.order_id,
                payment_id=record.payment_id,
                amount=record.amount or Money(amount=0, currency="XXX"),
            )
            for key, record in sorted(self.records.items(), key=lambda item: item[1].received_at)
            if record.refund_due == provider
        ]
        return owed[:limit] if limit is not None else owed

    @hooked
    def mark_refund_failed(self, event_key: str, provider: str, reason: str) -> None:
        record = self.records.setdefault(event_key, EventRecord("", "", False, self._clock()))
        record.refund_due, record.refund_error = f"{provider}#failed", reason[:500]

    @hooked
    def settle_owed(self, provider: str, order_id: str, payment_id: str) -> None:
        self.mark_refunded(_owed_key(provider, payment_id))

    @hooked
    def mark_refunded(self, event_key: str) -> None:
        if (record := self.records.get(event_key)) is not None:
            record.refund_due = None

    # ---------- for tests ----------

    def applied(self, event: PaymentEvent) -> bool:
        record = self.records.get(_key(event))
        return record is not None and record.applied

    def owed_payments(self, provider: str) -> list[str]:
        """Payment ids owed back to buyers through `provider` (as reconcile's refund step reads them)."""
        return [owed.payment_id for owed in self._owed(provider, limit=None)]

    def refund_failed(self, provider: str) -> list[str]:
        """Payment ids whose refund the provider refused, set aside for an operator."""
        return [r.payment_id for r in self.records.values() if r.refund_due == f"{provider}#failed"]


def _key(event: PaymentEvent) -> str:
    return f"{event.provider}#{event.event_id}"


def _owed_key(provider: str, payment_id: str) -> str:
    return f"owed#{provider}#{payment_id}"
