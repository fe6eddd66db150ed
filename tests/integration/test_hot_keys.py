"""Index keys written per order are spread over write shards (docs/allocation.md, "Hot keys"). A
merchant's order list merges its shards into one exact newest-first order whatever the page size,
request budget or ties in time; reconciliation reads every shard of `due`, `audit` and `held`.

The local runtime keeps one shard per index (the embedded AWS walks the whole table for every index
query); this module runs with four, so the spreading and merging are real here."""

import secrets
from datetime import timedelta

import pytest

from shared.adapters import allocation, orders, stock_upkeep
from shared.money import Money
from shared.orders import Order, Payment, Status, chain_event, utcnow
from shared.settings import settings
from shared.store.orders import OrderFilter, OrderItem, OrderPosition
from shared.store.shards import audit_partition
from shared.store.stock.items import ShardItem
from tests.support import new_codes

SHARDS = 4


@pytest.fixture(scope="module", autouse=True)
def several_shards(runtime):
    """Four shards per index for this module (the handlers run in this process and read the same settings)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DUE_SHARDS", "MERCHANT_ORDER_SHARDS", "HELD_SHARDS", "AUDIT_SHARDS"):
            patch.setenv(name, str(SHARDS))
        settings.cache_clear()  # read once per process: read again, with these
        yield
    settings.cache_clear()


T0 = utcnow().replace(microsecond=0) - timedelta(days=400)  # older than any other test's orders
EMAILS = ["ann@example.com", "bo@example.com", "Ann@Example.com"]


def _order(merchant_id: str, n: int) -> Order:
    """The n-th order: three at a time share one microsecond, so ties in time are the rule here."""
    order_id = f"ord_{secrets.token_hex(10)}"
    at = T0 + timedelta(microseconds=n // 3)
    return Order(
        order_id=order_id,
        merchant_id=merchant_id,
        product_id=f"prd_{n % 2}",
        quantity=1,
        total=Money(amount=100, currency="CNY"),
        email=EMAILS[n % 3],
        provider="sandbox",
        status=Status.PENDING_PAYMENT,
        access_token_hash="0" * 64,
        created_at=at,
        expires_at=at + timedelta(minutes=15),
        slots=[],
        history=[chain_event(order_id, [], "order.created", at, {"quantity": 1})],
    )


def _paid(order: Order) -> Order:
    payment = Payment(
        provider="sandbox", payment_id=f"pay_{order.order_id}", event_id="evt_1", amount=order.total
    )
    return orders().transition(
        order, "payment.succeeded", order.created_at, payment=payment, due_in=timedelta(minutes=2)
    )


@pytest.fixture(scope="module")
def book(runtime, several_shards):
    """40 orders of one merchant, every fourth paid, in three-way ties of `created_at`."""
    merchant_id = f"mer_{secrets.token_hex(10)}"
    placed = []
    for n in range(40):
        order = _order(merchant_id, n)
        orders().create(order)
        placed.append(_paid(order) if n % 4 == 0 else order)
    yield merchant_id, placed
    for order in placed:  # off the `due` index: reconcile runs of later tests must not act on them
        orders().clear_due(order.order_id, order.status)


def _newest_first(placed: list[Order]) -> list[Order]:
    return sorted(placed, key=lambda o: (o.created_at, o.order_id), reverse=True)


def _every_page(merchant_id, filters, limit, page_size=None, max_pages=10) -> list[list[str]]:
    pages, after = [], None
    for _ in range(200):
        page = orders().for_merchant(merchant_id, filters, limit, after, page_size, max_pages)
        assert len(page.orders) <= limit
        pages.append([o.order_id for o in page.orders])
        after = page.resume_after
        if after is None:
            return pages
    raise AssertionError("the listing never ended")


def test_the_orders_are_spread_over_several_shards(book):
    merchant_id, placed = book
    shards = {OrderItem.get(o.order_id).merchant_shard for o in placed}
    assert len(shards) == settings().merchant_order_shards > 1
    assert all(shard.startswith(f"{merchant_id}#") for shard in shards)


@pytest.mark.parametrize(
    ("limit", "page_size", "max_pages"), [(100, None, 10), (7, None, 10), (5, 2, 1), (3, 1, 0), (1, 1, 0)]
)
@pytest.mark.parametrize(
    "filters",
    [
        OrderFilter(),
        OrderFilter(status=Status.PAID),
        OrderFilter(email="ANN@example.com", product_id="prd_0"),
        OrderFilter(created_from=T0 + timedelta(microseconds=2), created_to=T0 + timedelta(microseconds=9)),
    ],
    ids=["all", "status", "email and product", "window"],
)
def test_every_page_size_and_budget_lists_each_order_once_in_order(
    book, filters, limit, page_size, max_pages
):
    merchant_id, placed = book
    expected = [
        o.order_id
        for o in _newest_first(placed)
        if (filters.status is None or o.status == filters.status)
        and (filters.email is None or o.email.lower() == filters.email.lower())
        and (filters.product_id is None or o.product_id == filters.product_id)
        and (filters.created_from is None or o.created_at >= filters.created_from)
        and (filters.created_to is None or o.created_at < filters.created_to)
    ]
    pages = _every_page(merchant_id, filters, limit, page_size, max_pages)
    assert [order_id for page in pages for order_id in page] == expected
    if filters == OrderFilter() and max_pages == 10:
        assert all(len(page) == limit for page in pages[:-1])  # unfiltered: only the last page is short


def test_a_position_between_two_orders_of_one_microsecond_resumes_exactly(book):
    merchant_id, placed = book
    ordered = _newest_first(placed)
    tied = ordered[10]
    assert ordered[11].created_at == tied.created_at or ordered[9].created_at == tied.created_at
    after = OrderPosition(created_at=tied.created_at, order_id=tied.order_id)
    page = orders().for_merchant(merchant_id, OrderFilter(), limit=100, after=after)
    assert [o.order_id for o in page.orders] == [o.order_id for o in ordered[11:]]


def test_due_orders_are_read_from_every_shard_soonest_first(book):
    _, placed = book
    unpaid = {o.order_id for o in placed if o.status == Status.PENDING_PAYMENT}
    keys = {OrderItem.get(order_id).due_status for order_id in unpaid}
    assert len(keys) > 1 and all(k.startswith("PENDING_PAYMENT#") for k in keys)
    due = orders().outstanding(Status.PENDING_PAYMENT, before=T0 + timedelta(minutes=16))
    assert unpaid <= {e.order_id for e in due}
    assert [e.due_at for e in due] == sorted(e.due_at for e in due)
    first = orders().outstanding(Status.PENDING_PAYMENT, before=T0 + timedelta(minutes=16), limit=5)
    assert first == due[:5]


def test_a_claim_marks_its_shard_in_the_audit_shard_of_that_stock_shard(shop):
    product_id = shop.new_product(new_codes(4), shards=2)
    (piece,) = allocation().claim(product_id, 2, 1, order_id=f"ord_{secrets.token_hex(10)}")
    item = ShardItem.get(f"{product_id}#shard#{piece.shard:04d}", "shard", consistent_read=True)
    assert item.audit_due == audit_partition(product_id, piece.shard, settings().audit_shards)
    assert piece.shard in stock_upkeep().shards_due()[product_id]
