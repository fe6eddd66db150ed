"""Items every order would read are read once per PRODUCT_CACHE_SECONDS (WEBHOOK_CACHE_SECONDS) per
container, whatever the order rate (shared/store/recent.py; docs/allocation.md "Hot keys"), and a
merchant's change still reaches buyers within that time (docs/merchant-api.md, "How soon a change
applies"). The local runtime is one container: its handlers share one process and one cache.

Counted with a botocore hook on every request the handlers send (tests/faults_aws.py). Timing is
never assumed: a count is bounded by the time the calls took, a change is polled for with a deadline."""

import math
import threading
import time
from typing import Any

import pytest

from functions.notify import webhooks
from shared import notify
from shared.adapters import merchants as merchant_store
from shared.adapters import webhooks as webhook_store
from shared.orders import utcnow
from shared.settings import settings
from tests.faults_aws import on_table, watched
from tests.support import expire_all, new_codes, poll

N = 20


@pytest.fixture
def merchant(runtime) -> str:
    return merchant_store().create_merchant("Hot reads test")[1]


@pytest.fixture(autouse=True)
def expire_afterwards(runtime):
    """These tests leave many unpaid orders; expire them, so a later test's one expiry run (100 orders
    at most, oldest first) still reaches its own."""
    yield
    expire_all()


def at_most_once_per_ttl(elapsed: float, seconds: float) -> int:
    """Reads one key may take in `elapsed` seconds if each is kept `seconds` (timed from its start)."""
    return 1 + math.floor(elapsed / seconds)


def product_reads(product_id: str):
    return watched("GetItem", on_table(settings().shop_table, pk=f"product#{product_id}"))


def shard_reads(product_id: str):
    """BatchGetItem of the product's stock shard items (its stock level)."""

    def match(params: dict[str, Any]) -> bool:
        keys = params.get("RequestItems", {}).get(settings().stock_table, {}).get("Keys", [])
        return any(key.get("pk", {}).get("S", "").startswith(f"{product_id}#shard#") for key in keys)

    return watched("BatchGetItem", match)


def test_checkouts_in_one_container_read_the_product_once_per_ttl(shop, merchant):
    seconds = settings().product_cache_seconds
    product_id = shop.new_product(new_codes(2 * N), key=merchant, max_per_order=1)

    with product_reads(product_id) as reads:
        began = time.monotonic()
        one_by_one = [shop.checkout(product_id).status_code for _ in range(N)]
        at_once: list[int] = []
        threads = [
            threading.Thread(target=lambda: at_once.append(shop.checkout(product_id).status_code))
            for _ in range(N)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began

    assert one_by_one + at_once == [201] * 2 * N
    assert 1 <= reads.seen <= at_most_once_per_ttl(elapsed, seconds), (reads.seen, elapsed)
    assert reads.seen < 2 * N


def test_product_views_read_the_product_and_its_stock_level_once_per_ttl(shop, merchant):
    seconds = settings().product_cache_seconds
    product_id = shop.new_product(new_codes(3), key=merchant)

    with product_reads(product_id) as products, shard_reads(product_id) as levels:
        began = time.monotonic()
        for n in range(N):
            path = f"/api/products/{product_id}" if n % 2 else f"/p/{product_id}"
            assert shop.http.get(f"{shop.url}{path}").status_code == 200
        elapsed = time.monotonic() - began

    bound = at_most_once_per_ttl(elapsed, seconds)
    assert 1 <= products.seen <= bound and 1 <= levels.seen <= bound, (products.seen, levels.seen, elapsed)


def test_events_for_one_merchant_read_its_webhook_once_per_ttl(runtime):
    seconds = settings().webhook_cache_seconds
    merchant_id, _ = merchant_store().create_merchant("Hot webhook test")  # no webhook: each is skipped
    watch = watched("GetItem", on_table(settings().shop_table, pk=f"webhook#{merchant_id}"))

    with watch as reads:
        began = time.monotonic()
        for n in range(N):
            sent = webhooks.send(
                _event(merchant_id, n), webhook_store(), webhooks.pool(), now=int(time.time())
            )
            assert sent == webhooks.Sent.NO_WEBHOOK
        elapsed = time.monotonic() - began

    assert 1 <= reads.seen <= at_most_once_per_ttl(elapsed, seconds), (reads.seen, elapsed)


def _event(merchant_id: str, n: int) -> notify.Notification:
    return notify.Notification(
        event_id=notify.event_id("order.paid", f"ord_{n:020x}", "t"),
        type="order.paid",
        merchant_id=merchant_id,
        created_at=utcnow(),
        data={},
    )


def test_a_deactivated_product_stops_selling_within_the_ttl(shop, merchant):
    seconds = settings().product_cache_seconds
    product_id = shop.new_product(new_codes(200), key=merchant, max_per_order=1)
    assert shop.checkout(product_id).status_code == 201  # the container now holds the active product

    patched = shop.merchant("PATCH", f"/merchant/products/{product_id}", key=merchant, json={"active": False})
    assert patched.status_code == 200 and patched.json()["active"] is False
    changed = time.monotonic()
    tried: list[tuple[float, int]] = []  # (started, status) of each checkout after the change

    def refused() -> bool:
        started = time.monotonic()
        tried.append((started, shop.checkout(product_id).status_code))
        return tried[-1][1] == 404

    poll(refused, deadline=seconds + 10)
    sold_after = [start - changed for start, status in tried if status == 201]
    assert all(after < seconds for after in sold_after), sold_after  # only within the TTL
    assert all(status == 404 for start, status in tried if start - changed >= seconds)
    assert shop.http.get(f"{shop.url}/api/products/{product_id}").status_code == 404
    # What it sold in the meantime is an ordinary order: its stock reserved, nothing else.
    assert shop.stock(product_id, key=merchant)["reserved"] == 1 + len(sold_after)


def test_a_price_change_applies_within_the_ttl_and_an_order_keeps_its_own_total(shop, merchant):
    seconds = settings().product_cache_seconds
    product_id = shop.new_product(new_codes(200), key=merchant, price=1000, max_per_order=1)
    before = shop.buy(product_id)
    assert before["total"] == {"amount": 1000, "currency": "CNY"}

    patched = shop.merchant(
        "PATCH",
        f"/merchant/products/{product_id}",
        key=merchant,
        json={"price": {"amount": 1500, "currency": "CNY"}},
    )
    assert patched.status_code == 200
    changed = time.monotonic()
    seen = shop.merchant("GET", f"/merchant/products/{product_id}", key=merchant).json()
    assert seen["price"]["amount"] == 1500  # the merchant API reads the store itself: at once
    tried: list[tuple[float, int]] = []

    def repriced() -> bool:
        started = time.monotonic()
        tried.append((started, shop.buy(product_id)["total"]["amount"]))
        return tried[-1][1] == 1500

    poll(repriced, deadline=seconds + 10)
    assert all(amount == 1500 for start, amount in tried if start - changed >= seconds), tried

    # The order made at the old price is paid and delivered at the total it was created with.
    assert shop.runtime.sandbox.pay(before["order_id"], 1000, "CNY")
    delivered = shop.wait_for(before, "DELIVERED")
    assert delivered["total"] == {"amount": 1000, "currency": "CNY"}
