"""One client cannot flood the buyer routes: checkout, order look-up and order polling each take a
token of the client's bucket (shared/store/rate.py), and a client past it gets 429 `rate_limited`
with a Retry-After, while every other client is served; once Retry-After has passed it is served
again. The store is exact under concurrency and safe when the SDK retries a write whose answer was
lost, and a refused client costs no further request to DynamoDB from the process that refused it.

The session's runtime lifts the buckets (tests/conftest.py); the tests here tighten one for a while.
Each client is its own loopback address (the local gateway takes the address from the socket), never
127.0.0.1, which every other test comes from."""

import http.client
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.settings import settings
from shared.store.rate import Bucket, RateItem, RateStore
from tests.faults_aws import lost_answer, on_table, watched
from tests.support import new_codes, poll

PER_MINUTE, BURST = 30, 3  # a token every 2 s, three at most
INTERVAL = 60 / PER_MINUTE
GROUPS = {
    "checkout": ("CHECKOUTS_PER_CLIENT_MINUTE", "CHECKOUT_BURST_PER_CLIENT"),
    "lookup": ("LOOKUPS_PER_CLIENT_MINUTE", "LOOKUP_BURST_PER_CLIENT"),
    "poll": ("POLLS_PER_CLIENT_MINUTE", "POLL_BURST_PER_CLIENT"),
}


def new_client() -> str:
    """A loopback address of its own (127.x.y.z with x ≥ 1: never 127.0.0.1)."""
    return f"127.{1 + secrets.randbelow(254)}.{1 + secrets.randbelow(254)}.{2 + secrets.randbelow(253)}"


@contextmanager
def bucket(group: str, per_minute: int, burst: int) -> Iterator[None]:
    """`group`'s bucket tightened for a while (the handlers run in this process and read these)."""
    rate, most = GROUPS[group]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(rate, str(per_minute))
        patch.setenv(most, str(burst))
        settings.cache_clear()
        try:
            yield
        finally:
            patch.undo()
            settings.cache_clear()


Request = tuple[str, str, Any, dict[str, str]]  # method, path, JSON body, headers


def send(shop, request: Request, client: str) -> tuple[int, dict[str, str], Any]:
    """The request over HTTP from the loopback address `client`: status, headers, JSON body."""
    method, path, body, headers = request
    url = urlsplit(shop.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(client, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw or "null")
    finally:
        connection.close()


def route(shop, group: str, codes: int) -> tuple[Request, int]:
    """A request of `group` that succeeds, and its success status (made while the buckets are lifted)."""
    if group == "checkout":
        product_id = shop.new_product(new_codes(codes))
        body = {"product_id": product_id, "quantity": 1, "email": "flood@example.com"}
        return ("POST", "/api/orders", body, {}), 201
    if group == "lookup":
        return ("POST", "/api/orders/lookup", {"email": "flood@example.com"}, {}), 202
    order = shop.buy(shop.new_product(new_codes(1)))
    return (
        "GET",
        f"/api/orders/{order['order_id']}",
        None,
        {"Authorization": f"Bearer {order['access_token']}"},
    ), 200


def refused(answer: tuple[int, dict[str, str], Any]) -> int:
    """The Retry-After of a 429 `rate_limited` in the shop's error shape."""
    status, headers, body = answer
    assert status == 429, answer
    assert body["error"]["code"] == "rate_limited" and body["error"]["message"], body
    assert headers["content-type"] == "application/json"
    retry_after = int(headers["retry-after"])
    assert 1 <= retry_after <= INTERVAL + 1
    return retry_after


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_flood_from_one_client_is_refused_while_others_are_served(shop, group):
    request, ok = route(shop, group, codes=3 * BURST)
    flooder, other = new_client(), new_client()
    with bucket(group, PER_MINUTE, BURST):
        served, started = 0, time.monotonic()
        while (sent_at := time.monotonic()) and (answer := send(shop, request, flooder))[0] == ok:
            served += 1
            if served >= 10 * BURST:
                break
        # Timed before the refused request was sent: the server decided within it, no later.
        retry_after, refused_at = refused(answer), sent_at
        # The burst, and at most the tokens that came back while the flood ran; never more.
        assert BURST <= served <= BURST + (refused_at - started) / INTERVAL
        assert refused(send(shop, request, flooder)) >= 1  # still refused
        assert send(shop, request, other)[0] == ok  # another client is served meanwhile

        # Once Retry-After has passed (but not much before), the flooder is served again.
        poll(lambda: send(shop, request, flooder)[0] == ok, deadline=retry_after + 10, every=0.1)
        assert time.monotonic() - refused_at >= retry_after - 1 - 0.25


def test_concurrent_requests_from_one_client_never_exceed_its_bucket(shop):
    request, ok = route(shop, "poll", codes=1)
    client, threads, per_minute, burst = new_client(), 24, 6, 5  # a token every 10 s: none comes back
    start, answers = threading.Barrier(threads), []

    def poll_once() -> None:
        start.wait()
        answers.append(send(shop, request, client))

    with bucket("poll", per_minute, burst):
        workers = [threading.Thread(target=poll_once) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [ok] * burst + [429] * (threads - burst), statuses
    # A token every 10 s; one second more at most: concurrent requests read the clock before they
    # are served, so one that read it earlier than the last admitted one waits a fraction longer.
    assert all(1 <= int(headers["retry-after"]) <= 11 for status, headers, _ in answers if status == 429)


# ---- the store, against the embedded AWS


def test_simultaneous_takes_from_many_containers_admit_exactly_the_burst_then_the_rate(runtime):
    client, bucket_, now = new_client(), Bucket(per_minute=60, burst=7), time.time()
    takers = 40
    start, waits = threading.Barrier(takers), []

    def take(at: float) -> None:
        store = RateStore("secret")  # a container of its own: no memory shared with the others
        start.wait()
        waits.append(store.take("test", client, bucket_, at))

    for at in (now, now + 3):  # all at one instant; then three tokens later
        waits.clear()
        workers = [threading.Thread(target=take, args=(at,)) for _ in range(takers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sum(wait == 0 for wait in waits) == (7 if at == now else 3)
        assert all(wait > 0 for wait in waits if wait) and min(w for w in waits if w) == pytest.approx(
            1, abs=0.01
        )
    item = RateItem.get(RateStore("secret").key("test", client), "bucket", consistent_read=True)
    assert item.tat == int(now * 1000) + 10 * 1000  # ten tokens taken, each moving `tat` on a second


def test_a_refused_client_costs_no_further_request_until_it_may_be_admitted(runtime):
    store, client, bucket_, now = (
        RateStore("secret"),
        new_client(),
        Bucket(per_minute=60, burst=2),
        time.time(),
    )
    assert store.take("test", client, bucket_, now) == 0
    assert store.take("test", client, bucket_, now) == 0
    assert store.take("test", client, bucket_, now) == pytest.approx(1, abs=0.01)
    mine = on_table(settings().limits_table, pk=store.key("test", client))
    with watched("UpdateItem", mine) as writes, watched("GetItem", mine) as reads:
        for n in range(50):
            assert store.take("test", client, bucket_, now + n / 100) == pytest.approx(1 - n / 100, abs=0.01)
    assert (writes.seen, reads.seen) == (0, 0)
    with watched("UpdateItem", mine) as writes:
        assert store.take("test", client, bucket_, now + 1) == 0  # a token came back: asked again
    assert writes.seen == 1


@pytest.mark.parametrize("history", ["idle", "busy"])
def test_a_write_whose_answer_was_lost_admits_once_and_charges_once(runtime, history):
    store, client, now = RateStore("secret"), new_client(), time.time()
    bucket_ = Bucket(per_minute=60, burst=1 if history == "idle" else 2)  # a double charge would refuse
    if history == "busy":
        assert store.take("test", client, bucket_, now) == 0
    key = store.key("test", client)
    with lost_answer("UpdateItem", on_table(settings().limits_table, pk=key)) as fault:
        # The write this store tries first: idle (it never saw the client), or busy (it took a token).
        assert store.take("test", client, bucket_, now) == 0
    assert fault.hits == 1 and fault.seen >= 2  # applied, answer lost, sent again by the SDK
    charged = 1 if history == "idle" else 2
    assert RateItem.get(key, "bucket", consistent_read=True).tat == int(now * 1000) + charged * 1000
    assert store.take("test", client, bucket_, now) == pytest.approx(1, abs=0.01)  # and now it is full
