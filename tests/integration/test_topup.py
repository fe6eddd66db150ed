"""Top-up delivery against the fake upstream on 127.0.0.1 (infra/local/upstream.py), on the local runtime.

Every scripted behaviour runs with each delivery duplicated (two threads deliver the same order at
once, as two copies of one SQS message would) and, in turn, with a crash injected at each new write
boundary. The fake is a naive supplier here (`dedupe` off: it credits every POST it receives), so its
own count proves miaofa never sent a second request after one that was applied: exactly once, never
blind. Then the order converges to DELIVERED (the receipt shown to the buyer) or to its policy."""

import contextlib
import secrets
import threading
from datetime import datetime, timedelta

import pytest

from functions.deliver.delivery import deliver
from infra.local.upstream import FakeUpstream
from shared import faults
from shared.adapters import orders, ports
from shared.orders import Status, utcnow
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import poll

FIELDS = [{"name": "uid", "label": {"zh-CN": "游戏 UID", "en": "Game UID"}, "type": "number"}]
READ_TIMEOUT_MS = 400
CREDITED = {"succeed", "slow", "timeout_after_applying", "error_5xx", "sign_wrongly", "fail_retryable"}
CREDITED_LATER = {"processing_then_callback", "processing_then_asked"}
REFUSED = {"fail", "refuse"}
BEHAVIOURS = sorted(CREDITED | CREDITED_LATER | REFUSED)
FIRST_ONLY = {"error_5xx", "fail_retryable", "sign_wrongly"}  # then the same key is sent again (or asked)


@pytest.fixture(scope="module")
def fake():
    with FakeUpstream("upsec_" + secrets.token_urlsafe(32), dedupe=False) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def upstream_name(shop, fake) -> str:
    answer = shop.merchant(
        "PUT",
        "/merchant/upstreams/fake",
        json={"url": fake.base_url, "secret": fake.secret, "read_timeout_ms": READ_TIMEOUT_MS},
    )
    assert answer.status_code == 200, answer.text
    assert "secret" not in answer.json()  # given by the supplier: not echoed
    return "fake"


def topup_order(shop, upstream_name: str, sku: str) -> dict:
    product_id = shop.new_product(
        [], delivery="topup", topup={"upstream": upstream_name, "sku": sku}, buyer_input=FIELDS
    )
    answer = shop.checkout(product_id, buyer_input={"uid": "10086"})
    assert answer.status_code == 201, answer.text
    order = answer.json()
    mark_paid_without_enqueueing(order)
    return order


def deliver_twice(order_id: str, now: datetime) -> None:
    """Two copies of the order's delivery message at once; a failure is a retry for later."""

    def one() -> None:
        with contextlib.suppress(Exception):
            deliver(order_id, ports(), now)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def converge(order_id: str, deadline: float = 20.0) -> Status:
    """Deliver (duplicated) again and again, each round a minute later than the last, as the queue's
    retries and reconciliation's re-drives would, until the order leaves PAID."""
    start = utcnow()
    rounds = iter(range(1000))

    def settled() -> Status | None:
        deliver_twice(order_id, start + timedelta(minutes=next(rounds)))
        status = orders().get(order_id).status
        return status if status != Status.PAID else None

    return poll(settled, deadline)


@pytest.mark.parametrize("point", [None, *faults.TOPUP_POINTS])
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_every_upstream_behaviour_is_applied_once_and_converges(shop, fake, upstream_name, behaviour, point):
    sku = f"sku-{secrets.token_hex(4)}"
    delay = READ_TIMEOUT_MS * 3 if behaviour == "timeout_after_applying" else 200
    if behaviour in FIRST_ONLY:
        fake.script_next(behaviour, delay_ms=delay)  # the first request; a later one succeeds
    else:
        fake.script(sku, behaviour, delay_ms=delay)
    order = topup_order(shop, upstream_name, sku)
    if point is not None:
        faults.arm(point)

    try:
        status = converge(order["order_id"])
    finally:
        faults.disarm()

    key = order["order_id"]
    if behaviour in REFUSED:
        assert status in (Status.REFUNDING, Status.REFUNDED)
        assert fake.applied(key) == 0
        return
    assert status == Status.DELIVERED
    assert fake.applied(key) == 1  # a naive supplier: one credit means one request after the applied one
    body = shop.order(order["order_id"], order["access_token"]).json()
    assert body["status"] == "DELIVERED" and body["delivery"] == "topup"
    assert body["receipt"] == fake.topup(key).receipt


def test_a_processing_top_up_is_confirmed_by_the_upstreams_signed_callback(shop, fake, upstream_name):
    sku = f"sku-{secrets.token_hex(4)}"
    fake.script(sku, "processing_then_callback", delay_ms=100)
    order = topup_order(shop, upstream_name, sku)

    assert deliver(order["order_id"], ports(), utcnow()) == Status.PAID  # processing: waits

    body = shop.wait_for(order, "DELIVERED")  # the callback, through the runtime's webhook route
    callbacks = poll(lambda: fake.topup(order["order_id"]).callbacks, 10)  # recorded once answered
    assert fake.applied(order["order_id"]) == 1 and callbacks == [200]
    assert body["receipt"] == fake.topup(order["order_id"]).receipt


def test_forged_replayed_and_foreign_upstream_callbacks_change_nothing(shop, fake, upstream_name):
    import json
    import time

    from shared.adapters import merchants
    from shared.providers.signatures import sandbox_signature
    from shared.upstream import ANSWER_SIGNATURE

    sku = f"sku-{secrets.token_hex(4)}"
    fake.script(sku, "processing_then_asked", delay_ms=60_000)
    order = topup_order(shop, upstream_name, sku)
    deliver(order["order_id"], ports(), utcnow())
    merchant_id = orders().get(order["order_id"]).merchant_id
    body = json.dumps(
        {"idempotency_key": order["order_id"], "status": "succeeded", "receipt": "free"}
    ).encode()

    def post(path: str, secret: str, at: int) -> int:
        headers = {"Content-Type": "application/json", ANSWER_SIGNATURE: sandbox_signature(secret, body, at)}
        return shop.http.post(f"{shop.url}{path}", data=body, headers=headers, timeout=30).status_code

    ours = f"/webhooks/upstream/{merchant_id}/{upstream_name}"
    assert post(ours, "upsec_" + "x" * 40, int(time.time())) == 400  # forged: another secret
    assert post(ours, fake.secret, int(time.time()) - 3600) == 400  # replayed: an hour old
    # Another merchant with an upstream of the same name, URL and secret: not this order's upstream.
    other, other_key = merchants().create_merchant("Another shop")
    registered = shop.merchant(
        "PUT",
        f"/merchant/upstreams/{upstream_name}",
        key=other_key,
        json={"url": fake.base_url, "secret": fake.secret},
    )
    assert registered.status_code == 200
    assert post(f"/webhooks/upstream/{other}/{upstream_name}", fake.secret, int(time.time())) == 404
    assert orders().get(order["order_id"]).status == Status.PAID and fake.applied(order["order_id"]) == 0


def test_an_upstream_is_the_merchants_own(shop, fake, upstream_name):
    from shared.adapters import merchants

    _, other_key = merchants().create_merchant("Another shop")
    assert shop.merchant("GET", f"/merchant/upstreams/{upstream_name}", key=other_key).status_code == 404
    assert shop.merchant("DELETE", f"/merchant/upstreams/{upstream_name}", key=other_key).status_code == 204
    mine = shop.merchant("GET", f"/merchant/upstreams/{upstream_name}")
    assert mine.status_code == 200 and mine.json()["url"] == fake.base_url and "secret" not in mine.json()


def test_make_runs_demo_top_up_is_credited_by_its_fake_upstream(shop):
    info = shop.runtime.info
    answer = shop.checkout(info.demo_topup_product_id, buyer_input={"uid": "10086", "server": "Asia 亚服"})
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")

    body = shop.wait_for(order, "DELIVERED")

    assert body["receipt"] and shop.runtime.upstream.applied(order["order_id"]) == 1
    counts = shop.http.get(f"{info.upstream_url}/_fake/topups", timeout=30).json()
    assert counts[order["order_id"]] == {"received": 1, "applied": 1}
