"""Asking the provider which payments it took for an order (recovering lost callbacks): the sandbox's
signed query API on the local runtime, and the client's refusal of any answer it cannot trust, against
fake provider peers on 127.0.0.1."""

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import urllib3

from shared.errors import InvalidSignature, PaymentMismatch
from shared.money import Money
from shared.orders import utcnow
from shared.providers import ProviderRefused, ProviderUnavailable, UnexpectedAnswer
from shared.providers.http import new_pool
from shared.providers.registry import provider
from shared.providers.sandbox import SandboxProvider, signed_query
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature
from tests.support import new_codes, stored_order

SECRET = "whsec_fake_peer_5b2e9c7a1d3f"
ORDER_ID = "ord_fake0000000000000001"

# ---------------------------------------------------------------- the sandbox on the local runtime


def pay_without_callback(shop) -> tuple[dict, str]:
    """A pending order the sandbox took a payment for, whose callback was lost; and that payment's id."""
    order = shop.buy(shop.new_product(new_codes(1)))
    total = order["total"]
    assert (
        shop.runtime.sandbox.pay(order["order_id"], total["amount"], total["currency"], callback=False)
        is False
    )
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    return order, payment_id


def test_a_payment_whose_callback_was_lost_is_found_by_asking(runtime, shop):
    order, payment_id = pay_without_callback(shop)
    client = SandboxProvider(runtime.sandbox.api_url, runtime.sandbox_secret)

    (found,) = client.query(order["order_id"])

    assert found.provider == "sandbox" and found.type == "payment.succeeded"
    assert (found.order_id, found.payment_id) == (order["order_id"], payment_id)
    assert found.amount == Money(amount=order["total"]["amount"], currency=order["total"]["currency"])
    assert found.event_id == f"query:{payment_id}"
    assert client.query(order["order_id"]) == [found]  # asked again: the same event (I5)
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "PENDING_PAYMENT"


def test_an_unpaid_order_has_no_payments(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert SandboxProvider(runtime.sandbox.api_url, runtime.sandbox_secret).query(order["order_id"]) == []


def test_an_order_id_needing_escapes_is_signed_and_asked_about_exactly(runtime):
    client = SandboxProvider(runtime.sandbox.api_url, runtime.sandbox_secret)
    assert client.query("ord_x/ä &order_id=ord_y+1") == []


def test_the_configured_client_is_the_sandbox_of_this_runtime(runtime, shop):
    order, payment_id = pay_without_callback(shop)
    client = provider("sandbox")
    assert client is not None
    assert [event.payment_id for event in client.query(order["order_id"])] == [payment_id]
    assert provider("paypal") is None  # not a provider this shop knows


def test_a_found_payment_and_its_late_callback_count_as_one_payment(runtime, shop):
    from shared import adapters
    from shared.settlement import Outcome, apply_payment

    order, payment_id = pay_without_callback(shop)
    (found,) = SandboxProvider(runtime.sandbox.api_url, runtime.sandbox_secret).query(order["order_id"])
    outcome = apply_payment(found, adapters.ports(), now=utcnow(), redrive_after=timedelta(minutes=2))
    assert outcome == Outcome.APPLIED

    late = shop.payment_event(order, payment_id=payment_id)  # the lost callback arrives after all
    assert shop.callback(late).status_code == 200

    delivered = shop.wait_for(order, "DELIVERED")
    assert len(delivered["items"]) == 1
    assert stored_order(order["order_id"]).payment.payment_id == payment_id
    assert not any(payment_id in key for key in adapters.payment_events().refunds_due("sandbox"))


def signed_get(runtime, order_id: str, header: str | None) -> requests.Response:
    headers = {"Sandbox-Signature": header} if header is not None else {}
    return requests.get(runtime.sandbox.api_url, params={"order_id": order_id}, headers=headers, timeout=10)


def query_signature(runtime, order_id: str, secret: str | None = None, age: int = 0) -> str:
    path = "/_sandbox/api/payments"
    secret = runtime.sandbox_secret if secret is None else secret
    return sandbox_signature(secret, signed_query(path, order_id), int(time.time()) - age)


def test_the_answer_is_signed_by_the_provider(runtime, shop):
    order, _ = pay_without_callback(shop)
    response = signed_get(runtime, order["order_id"], query_signature(runtime, order["order_id"]))
    assert response.status_code == 200
    header = response.headers["Sandbox-Signature"]
    verify_sandbox_signature(runtime.sandbox_secret, header, response.content, int(time.time()), 300)
    assert response.json()["payments"][0]["status"] == "succeeded"


@pytest.mark.parametrize(
    "signature",
    [
        lambda runtime, order_id: None,
        lambda runtime, order_id: query_signature(runtime, order_id, secret="whsec_someone_else_4e1f"),
        lambda runtime, order_id: query_signature(runtime, "ord_another_order_00000"),
        lambda runtime, order_id: query_signature(runtime, order_id, age=301),
        lambda runtime, order_id: "t=not-a-time,v1=00",
    ],
    ids=["unsigned", "other_secret", "signed_for_another_order", "stale", "garbage"],
)
def test_a_query_that_is_not_signed_by_the_shop_is_401(runtime, shop, signature):
    order, _ = pay_without_callback(shop)
    response = signed_get(runtime, order["order_id"], signature(runtime, order["order_id"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert "payments" not in response.text and "Sandbox-Signature" not in response.headers


def test_a_client_with_the_wrong_secret_is_refused(runtime, shop):
    order, _ = pay_without_callback(shop)
    with pytest.raises(ProviderRefused):
        SandboxProvider(runtime.sandbox.api_url, "whsec_not_the_sandbox_secret").query(order["order_id"])


def test_without_a_pay_url_or_a_secret_there_is_no_sandbox(monkeypatch):
    from shared.providers import registry

    registry._providers.cache_clear()
    try:
        for pay_url, secret in [("", SECRET), ("http://127.0.0.1:9/_sandbox/pay", "")]:
            config = SimpleNamespace(
                sandbox_pay_url=pay_url,
                sandbox_api_url="http://127.0.0.1:9/_sandbox/api/payments",
                sandbox_secret=secret,
                payment_providers_secret="",
            )
            monkeypatch.setattr(registry, "settings", lambda config=config: config)
            assert provider("sandbox") is None
            registry._providers.cache_clear()
    finally:
        registry._providers.cache_clear()


# ---------------------------------------------------------------- hostile or failing provider peers

Answer = tuple[int, dict[str, str], bytes]


class FakePeer:
    """A provider on 127.0.0.1 whose answers a test scripts; it keeps every request it got."""

    def __init__(self, answer: Callable[[int], Answer]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                peer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = answer(len(peer.requests))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/payments"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer() -> Iterator[Callable[[Callable[[int], Answer]], FakePeer]]:
    started: list[FakePeer] = []

    def start(answer: Callable[[int], Answer]) -> FakePeer:
        started.append(FakePeer(answer))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


def answer_body(order_id: str = ORDER_ID, payments: Any = None) -> bytes:
    if payments is None:
        payments = [{"payment_id": "pay_1", "amount": 1999, "currency": "CNY", "status": "succeeded"}]
    return json.dumps({"order_id": order_id, "payments": payments}).encode()


def signed(body: bytes, secret: str = SECRET) -> Answer:
    return (
        200,
        {
            "Content-Type": "application/json",
            "Sandbox-Signature": sandbox_signature(secret, body, int(time.time())),
        },
        body,
    )


def always(answer: Answer) -> Callable[[int], Answer]:
    return lambda _: answer


def test_the_client_signs_what_it_asks(peer):
    fake = peer(always(signed(answer_body())))
    (event,) = SandboxProvider(fake.url, SECRET).query(ORDER_ID)
    assert (event.event_id, event.amount) == ("query:pay_1", Money(amount=1999, currency="CNY"))
    ((path, headers),) = fake.requests
    assert path == f"/api/payments?order_id={ORDER_ID}"
    verify_sandbox_signature(
        SECRET, headers["sandbox-signature"], signed_query("/api/payments", ORDER_ID), int(time.time()), 300
    )


def test_only_succeeded_payments_are_events(peer):
    payments = [
        {"payment_id": f"pay_{status}", "amount": 1999, "currency": "CNY", "status": status}
        for status in ("pending", "failed", "succeeded", "refunded")
    ]
    fake = peer(always(signed(answer_body(payments=payments))))
    assert [event.payment_id for event in SandboxProvider(fake.url, SECRET).query(ORDER_ID)] == [
        "pay_succeeded"
    ]


def test_a_tampered_answer_is_never_trusted(peer):
    status, headers, body = signed(answer_body())
    fake = peer(always((status, headers, body.replace(b"1999", b"1998"))))
    with pytest.raises(InvalidSignature):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"Content-Type": "application/json"}, answer_body()),
        signed(answer_body(), secret="whsec_an_impostor_7c1b"),
    ],
    ids=["unsigned", "signed_by_someone_else"],
)
def test_an_answer_not_signed_by_the_provider_is_never_trusted(peer, answer):
    fake = peer(always(answer))
    with pytest.raises(InvalidSignature):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)


def test_an_answer_about_another_order_is_refused(peer):
    fake = peer(always(signed(answer_body(order_id="ord_someone_elses_order"))))
    with pytest.raises(PaymentMismatch):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>upstream error</html>",
        b"\xff\xfe",
        b"[]",
        answer_body(
            payments=[{"payment_id": "pay_1", "amount": "1999", "currency": "CNY", "status": "succeeded"}]
        ),
        answer_body(
            payments=[{"payment_id": "pay_1", "amount": 19.99, "currency": "CNY", "status": "succeeded"}]
        ),
        answer_body(
            payments=[{"payment_id": "pay_1", "amount": 1999, "currency": "cny", "status": "succeeded"}]
        ),
        answer_body(payments=[{"payment_id": "pay_1", "amount": 1999, "currency": "CNY", "status": "paid?"}]),
        answer_body(payments={"pay_1": 1999}),
        b"[" * 100_000,
        b" " * (1 << 20) + answer_body(),
    ],
    ids=[
        "html",
        "not_utf8",
        "not_an_object",
        "amount_as_text",
        "float_amount",
        "lowercase_currency",
        "unknown_status",
        "payments_not_a_list",
        "nested_too_deep",
        "too_large",
    ],
)
def test_a_signed_answer_of_the_wrong_shape_is_a_clear_error(peer, body):
    fake = peer(always(signed(body)))
    with pytest.raises(UnexpectedAnswer):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)


def test_a_provider_that_never_answers_is_unavailable():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever reads or answers them
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/payments"
        quick = new_pool(timeout=urllib3.Timeout(connect=0.5, read=0.5))
        with pytest.raises(ProviderUnavailable):
            SandboxProvider(url, SECRET, http=quick).query(ORDER_ID)
    finally:
        silent.close()


def test_a_provider_that_is_not_there_is_unavailable():
    vacant = socket.socket()
    vacant.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{vacant.getsockname()[1]}/api/payments"
    vacant.close()
    with pytest.raises(ProviderUnavailable):
        SandboxProvider(url, SECRET).query(ORDER_ID)


def test_a_passing_outage_is_retried(peer):
    busy = (503, {"Content-Type": "text/plain"}, b"busy")
    fake = peer(lambda n: busy if n <= 1 else signed(answer_body()))
    assert [event.payment_id for event in SandboxProvider(fake.url, SECRET).query(ORDER_ID)] == ["pay_1"]
    assert len(fake.requests) == 2  # one retry (shared/providers/http.py)


@pytest.mark.parametrize(("status", "attempts"), [(503, 2), (500, 1)])
def test_a_lasting_outage_is_unavailable(peer, status, attempts):
    fake = peer(always((status, {"Content-Type": "text/plain"}, b"down")))
    with pytest.raises(ProviderUnavailable):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)
    assert len(fake.requests) == attempts


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ProviderRefused), (404, ProviderRefused), (302, UnexpectedAnswer)],
)
def test_a_refusal_or_a_redirect_is_not_followed(peer, status, error):
    fake = peer(always((status, {"Location": "http://127.0.0.1:9/elsewhere"}, b"")))
    with pytest.raises(error):
        SandboxProvider(fake.url, SECRET).query(ORDER_ID)
    assert len(fake.requests) == 1


def test_the_client_never_shows_its_secret():
    client = SandboxProvider("http://127.0.0.1:9/api/payments", SECRET)
    assert SECRET not in repr(client) and SECRET not in str(vars(client).get("_api_url"))
