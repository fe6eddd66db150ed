"""The fakes keep the real stores' contracts (tests/fakes, shared/ports.py): each scenario runs once
against the in-memory fakes and once against the real stores on the embedded AWS, and asserts the
same answers, so a use-case test that passes on the fakes means what it says."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from shared.errors import AlreadyApplied, IntegrityViolation, OutOfStock, StateConflict
from shared.money import Money
from shared.orders import Order, Payment, SlotRange, Status, chain_event, utcnow
from shared.payments import PaymentEvent
from shared.ports import Ports
from shared.products import Product, StockLevels
from tests.fakes import FakePorts, fake_ports
from tests.support import new_codes


@dataclass
class Side:
    """One implementation of the ports, and how to put a product with codes in its stock."""

    ports: Ports
    fakes: FakePorts | None = None
    shop: object | None = None

    def product(self, codes: list[str], shards: int = 1) -> Product:
        if self.fakes is not None:
            return self.fakes.add_product(codes, shards=shards)
        product_id = self.shop.new_product(codes, shards=shards, max_per_order=10)  # type: ignore[attr-defined]
        product = self.ports.products.product(product_id, consistent=True)
        assert product is not None
        return product

    def levels(self, product: Product) -> StockLevels:
        if self.fakes is not None:
            return self.fakes.allocation.levels(product.product_id)
        from shared.adapters import allocation

        return allocation().levels(product.product_id, product.shards)

    def cipher(self, product: Product):
        return self.ports.ciphers(product.merchant_id)


@pytest.fixture(params=["fake", "real"])
def side(request) -> Side:
    if request.param == "fake":
        fakes = fake_ports(now=utcnow())
        return Side(fakes, fakes=fakes)
    shop = request.getfixturevalue("shop")  # the embedded AWS first: the real stores read its settings
    from shared.adapters import ports

    return Side(ports(), shop=shop)


def new_order(side: Side, product: Product, now: datetime, quantity: int = 1) -> Order:
    """An order as checkout writes it: its stock claimed, then created PENDING_PAYMENT."""
    order_id = f"ord_{secrets.token_hex(10)}"
    slots = side.ports.allocation.claim(product.product_id, product.shards, quantity, order_id)
    order = Order(
        order_id=order_id,
        merchant_id=product.merchant_id,
        product_id=product.product_id,
        quantity=quantity,
        total=product.total_for(quantity),
        email="contract@example.com",
        provider="sandbox",
        status=Status.PENDING_PAYMENT,
        access_token_hash="0" * 64,
        created_at=now,
        expires_at=now + timedelta(minutes=15),
        slots=slots,
        history=[chain_event(order_id, [], "order.created", now, {"quantity": quantity})],
    )
    side.ports.orders.create(order)
    return order


def payment_of(order: Order) -> Payment:
    return Payment(
        provider="sandbox", payment_id=f"pay_{order.order_id}", event_id="evt_1", amount=order.total
    )


def due_ids(side: Side, status: Status, before: datetime) -> set[str]:
    return {entry.order_id for entry in side.ports.orders.outstanding(status, before=before)}


# ---------- orders ----------


def test_an_order_is_created_once_and_read_back_as_written(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)

    assert side.ports.orders.get(order.order_id) == order
    with pytest.raises(AlreadyApplied):
        side.ports.orders.create(order)
    assert side.ports.orders.get(f"ord_{secrets.token_hex(10)}") is None
    assert [o.order_id for o in side.ports.orders.get_many({order.order_id, "ord_absent"})] == [
        order.order_id
    ]


def test_a_transition_is_conditional_on_the_state_and_history_it_leaves(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders

    paid = orders.transition(order, "payment.succeeded", now, {"k": "v"}, payment=payment_of(order))

    assert orders.get(order.order_id) == paid and paid.payment == payment_of(order)
    with pytest.raises(StateConflict):  # a stale copy
        orders.transition(order, "reservation.expired", now)
    with pytest.raises(StateConflict):  # no such move in the table
        orders.transition(paid, "reservation.expired", now)
    assert orders.get(order.order_id) == paid


def test_a_note_extends_the_history_only_and_is_conditional_on_it(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders

    noted = orders.note(order, "payment.wrong_amount", now, {"amount": 1})

    assert orders.get(order.order_id) == noted and noted.status == Status.PENDING_PAYMENT
    assert [e.type for e in noted.history] == ["order.created", "payment.wrong_amount"]
    assert order.order_id in due_ids(side, Status.PENDING_PAYMENT, order.expires_at)  # still due
    with pytest.raises(StateConflict):  # a stale copy
        orders.note(order, "payment.wrong_amount", now, {"amount": 2})
    with pytest.raises(StateConflict):  # not a note: moves go through the state table
        orders.note(noted, "payment.succeeded", now)
    assert orders.get(order.order_id) == noted


def test_the_due_entries_follow_the_orders_deadlines(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders

    assert order.order_id in due_ids(side, Status.PENDING_PAYMENT, order.expires_at)
    assert order.order_id not in due_ids(side, Status.PENDING_PAYMENT, now - timedelta(seconds=1))
    assert order.order_id in orders.due(Status.PENDING_PAYMENT, order.expires_at, limit=None)

    orders.postpone(order.order_id, Status.PAID, until=now + timedelta(hours=5))  # not PAID: no change
    assert order.order_id in due_ids(side, Status.PENDING_PAYMENT, order.expires_at)
    orders.postpone(order.order_id, Status.PENDING_PAYMENT, until=now + timedelta(hours=5))
    assert order.order_id not in due_ids(side, Status.PENDING_PAYMENT, order.expires_at)

    paid = orders.transition(order, "payment.succeeded", now, payment=payment_of(order), due_in=timedelta(0))
    assert order.order_id not in due_ids(side, Status.PENDING_PAYMENT, now + timedelta(hours=6))
    assert order.order_id in due_ids(side, Status.PAID, now)
    orders.clear_due(order.order_id, Status.EXPIRED)  # not due as EXPIRED: no change
    assert order.order_id in due_ids(side, Status.PAID, now)
    orders.transition(paid, "order.delivered", now)  # due_in None: nothing outstanding
    assert order.order_id not in due_ids(side, Status.PAID, now + timedelta(hours=6))


def test_a_redrive_is_taken_once_per_deadline(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders
    orders.transition(order, "payment.succeeded", now, payment=payment_of(order), due_in=timedelta(0))
    (entry,) = [e for e in orders.outstanding(Status.PAID, before=now) if e.order_id == order.order_id]

    assert orders.take_redrive(entry, until=now + timedelta(minutes=2)) == 1
    assert orders.take_redrive(entry, until=now + timedelta(minutes=2)) is None  # that deadline is taken
    later = now + timedelta(minutes=3)
    (entry,) = [e for e in orders.outstanding(Status.PAID, before=later) if e.order_id == order.order_id]
    assert orders.take_redrive(entry, until=later) == 2
    assert orders.get(order.order_id).redrives == 2  # type: ignore[union-attr]


def test_a_delivery_retry_is_counted_once_per_attempt_and_only_while_paid(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders

    assert orders.count_delivery_retry(order.order_id, "msg#2") is None  # not PAID
    paid = orders.transition(order, "payment.succeeded", now, payment=payment_of(order))
    assert orders.count_delivery_retry(order.order_id, "msg#2") == 1
    assert orders.count_delivery_retry(order.order_id, "msg#2") == 1  # the same attempt again
    assert orders.count_delivery_retry(order.order_id, "msg#3") == 2
    orders.record_delivery_failure(order.order_id, "IntegrityViolation: slot 0/1", now)
    stored = orders.get(order.order_id)
    assert stored is not None and (stored.delivery_error, stored.delivery_failures) == (
        "IntegrityViolation: slot 0/1",
        1,
    )
    orders.transition(paid, "order.delivered", now)
    assert orders.count_delivery_retry(order.order_id, "msg#4") is None
    assert orders.count_delivery_retry(f"ord_{secrets.token_hex(10)}", "msg#1") is None


def test_the_next_refund_attempt_is_taken_once(side):
    now = utcnow()
    order = new_order(side, side.product(new_codes(2)), now)
    orders = side.ports.orders
    orders.record_refund_failure(order.order_id, "not refunding", now)  # not REFUNDING: no change
    assert not orders.next_refund_attempt(order)
    paid = orders.transition(order, "payment.succeeded", now, payment=payment_of(order))
    refunding = orders.transition(paid, "refund.requested", now, due_in=timedelta(0))

    assert orders.next_refund_attempt(refunding)
    assert not orders.next_refund_attempt(refunding)  # another run moved on first
    orders.record_refund_failure(order.order_id, "refused", now + timedelta(hours=1))
    stored = orders.get(order.order_id)
    assert stored is not None and (stored.refund_attempt, stored.refund_error) == (1, "refused")
    assert order.order_id not in due_ids(side, Status.REFUNDING, now + timedelta(minutes=59))
    assert order.order_id in due_ids(side, Status.REFUNDING, now + timedelta(hours=1))


# ---------- stock ----------


def test_a_claim_is_all_or_nothing_and_a_release_gives_back_only_the_holders_slots(side):
    product = side.product(new_codes(2))
    allocation = side.ports.allocation

    taken = allocation.claim(product.product_id, 1, 2, "ord_a")
    with pytest.raises(OutOfStock):
        allocation.claim(product.product_id, 1, 1, "ord_b")
    assert allocation.release(product.product_id, taken, "ord_b") == 0
    assert allocation.release(product.product_id, taken, "ord_a") == 2
    assert allocation.release(product.product_id, taken, "ord_a") == 0  # idempotent
    assert side.levels(product) == StockLevels(available=2, reserved=0, sold=0, returned=0, imported=2)

    again = allocation.claim(product.product_id, 1, 2, "ord_b")  # from the pool
    assert sum(r.count for r in again) == 2
    with pytest.raises(OutOfStock):
        allocation.claim(product.product_id, 1, 1, "ord_c")


def test_a_claim_takes_pieces_of_several_shards_and_never_the_slots_to_avoid(side):
    product = side.product(new_codes(4), shards=2)
    allocation = side.ports.allocation
    first = allocation.claim(product.product_id, 2, 3, "ord_a")
    assert sum(r.count for r in first) == 3
    allocation.release(product.product_id, first, "ord_a")

    with pytest.raises(OutOfStock):  # one fresh slot left; the pooled ones are to be avoided
        allocation.claim(product.product_id, 2, 2, "ord_a", avoid=first)
    assert side.levels(product).available == 4
    assert sum(r.count for r in allocation.claim(product.product_id, 2, 4, "ord_b")) == 4


def test_a_bind_is_for_the_holder_only_and_codes_open_only_for_their_order(side):
    codes = new_codes(2)
    product = side.product(codes)
    allocation = side.ports.allocation
    slots = allocation.claim(product.product_id, 1, 1, "ord_a")

    with pytest.raises(IntegrityViolation):
        allocation.read_codes(product.product_id, slots, "ord_a", side.cipher(product))  # not bound yet
    with pytest.raises(IntegrityViolation):
        allocation.bind(product.product_id, slots, "ord_b")
    allocation.bind(product.product_id, slots, "ord_a")
    allocation.bind(product.product_id, slots, "ord_a")  # a redelivery binds nothing new

    (code,) = allocation.read_codes(product.product_id, slots, "ord_a", side.cipher(product))
    assert code in codes
    with pytest.raises(IntegrityViolation):
        allocation.read_codes(product.product_id, slots, "ord_b", side.cipher(product))
    assert allocation.release(product.product_id, slots, "ord_a") == 0  # a bound code stays sold
    assert allocation.release_unkept(product.product_id, slots, [], "ord_a") == 0
    assert side.levels(product) == StockLevels(available=1, reserved=0, sold=1, returned=0, imported=2)


def test_release_unkept_keeps_what_the_stored_order_holds(side):
    product = side.product(new_codes(3))
    allocation = side.ports.allocation
    claimed = allocation.claim(product.product_id, 1, 3, "ord_a")
    kept = [SlotRange(shard=claimed[0].shard, start=claimed[0].start, count=1)]

    assert allocation.release_unkept(product.product_id, claimed, kept, "ord_a") == 2
    assert side.levels(product).reserved == 1


# ---------- limits ----------


def test_tickets_are_capped_and_given_back_only_by_their_order(side):
    limits, key = side.ports.limits, f"email#{secrets.token_hex(8)}"
    until = int((utcnow() + timedelta(minutes=15)).timestamp())
    first = limits.take(key, 2, "ord_a", until)
    assert first is not None and limits.take(key, 2, "ord_b", until) is not None
    assert limits.take(key, 2, "ord_c", until) is None

    limits.give_back(first, "ord_c")
    assert limits.take(key, 2, "ord_c", until) is None
    limits.give_back(first, "ord_a")
    assert limits.take(key, 2, "ord_c", until) is not None


def test_a_ticket_past_its_until_is_free_again(side):
    limits, key = side.ports.limits, f"email#{secrets.token_hex(8)}"
    assert limits.take(key, 1, "ord_a", int(utcnow().timestamp()) - 5) is not None
    assert limits.take(key, 1, "ord_b", int(utcnow().timestamp()) + 900) is not None


def test_unit_holds_stay_within_the_clients_and_the_emails_bounds(side):
    limits = side.ports.limits
    product, client = (
        f"prd_{secrets.token_hex(10)}",
        f"198.51.100.{secrets.randbelow(250)}#{secrets.token_hex(4)}",
    )
    until = int((utcnow() + timedelta(minutes=15)).timestamp())

    held = limits.hold_units(product, client, "a@example.com", "ord_a", "c1", 2, (4, 3), until)
    assert not isinstance(held, str)
    assert limits.hold_units(product, client, "a@example.com", "ord_b", "c1", 2, (4, 3), until) == "email"
    assert limits.hold_units(product, client, "b@example.com", "ord_b", "c1", 2, (4, 3), until) != "client"
    assert limits.hold_units(product, client, "c@example.com", "ord_c", "c1", 1, (4, None), until) == "client"
    assert (
        limits.hold_units(product, client, "a@example.com", "ord_a", "c1", 2, (4, 3), until) == held
    )  # a retry

    limits.give_back(held, "ord_a", "other-call")  # another call's hold: not this one
    assert limits.hold_units(product, client, "c@example.com", "ord_c", "c1", 1, (4, None), until) == "client"
    limits.give_back(held, "ord_a")
    assert limits.hold_units(product, client, "c@example.com", "ord_c", "c1", 1, (4, None), until) != "client"


def test_a_paid_order_counts_once_against_its_emails_daily_limit(side):
    limits, product = side.ports.limits, f"prd_{secrets.token_hex(10)}"
    day = utcnow().date()

    assert limits.count_paid(product, "a@example.com", day, 2, 3, "ord_a")
    assert limits.count_paid(product, "a@example.com", day, 2, 3, "ord_a")  # the same payment again
    assert not limits.count_paid(product, "a@example.com", day, 2, 3, "ord_b")
    assert limits.count_paid(product, "A@example.com ", day, 1, 3, "ord_c")  # the same address
    assert limits.paid_today(product, "a@example.com", day) == 3
    assert limits.paid_today(product, "a@example.com", day + timedelta(days=1)) == 0
    assert not limits.count_paid(product, "b@example.com", day, 4, 3, "ord_d")


def test_hourly_counts_stop_at_their_limit(side):
    limits, key, now = side.ports.limits, f"lookup#{secrets.token_hex(8)}", int(utcnow().timestamp())
    assert [limits.take_hourly(key, 2, now) for _ in range(3)] == [True, True, False]
    assert limits.take_hourly(key, 2, now + 3600)


# ---------- provider events ----------


def payment_event(order_id: str, payment_id: str, event_id: str | None = None) -> PaymentEvent:
    return PaymentEvent(
        provider="sandbox",
        event_id=event_id or f"evt_{secrets.token_hex(8)}",
        type="payment.succeeded",
        order_id=order_id,
        payment_id=payment_id,
        amount=Money(amount=1999, currency="CNY"),
    )


def test_an_event_is_applied_once(side):
    events = side.ports.events
    event = payment_event(f"ord_{secrets.token_hex(10)}", f"pay_{secrets.token_hex(6)}")

    assert events.record(event)
    assert events.record(event)  # recorded, not yet applied: a retry after a crash goes on
    events.mark_applied(event)
    assert not events.record(event)


def test_a_payment_owed_back_is_owed_once_until_settled(side):
    events = side.ports.events
    order_id, payment_id = f"ord_{secrets.token_hex(10)}", f"pay_{secrets.token_hex(6)}"
    events.mark_needs_refund(payment_event(order_id, payment_id))
    events.mark_needs_refund(payment_event(order_id, payment_id))  # reported by another event

    def owed() -> list[str]:
        return [o.payment_id for o in events.owed("sandbox", limit=None) if o.order_id == order_id]

    assert owed() == [payment_id]
    (entry,) = [o for o in events.owed("sandbox", limit=None) if o.order_id == order_id]
    assert entry.amount == Money(amount=1999, currency="CNY")
    events.settle_owed("sandbox", order_id, payment_id)
    assert owed() == []
    events.mark_needs_refund(payment_event(order_id, payment_id))  # given back already: not owed again
    assert owed() == []


def test_an_owed_payment_the_provider_refused_is_set_aside(side):
    events = side.ports.events
    order_id, payment_id = f"ord_{secrets.token_hex(10)}", f"pay_{secrets.token_hex(6)}"
    events.mark_needs_refund(payment_event(order_id, payment_id))
    (entry,) = [o for o in events.owed("sandbox", limit=None) if o.order_id == order_id]

    events.mark_refund_failed(entry.event_key, "sandbox", "refused")
    assert [o for o in events.owed("sandbox", limit=None) if o.order_id == order_id] == []
    events.mark_refunded(entry.event_key)
    assert [o for o in events.owed("sandbox", limit=None) if o.order_id == order_id] == []
