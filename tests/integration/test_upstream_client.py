"""miaofa's top-up client (shared/upstream.py) against the fake upstream (infra/local/upstream.py) on
127.0.0.1, over real HTTP: every scripted behaviour ends in the outcome the caller must act on, an
outcome that may hide a credit is OutcomeUnknown and never a second POST, and the status endpoint then
tells what happened. A stub server stands in for a broken or hostile host (forged and replayed answers,
a reset connection, a 503)."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.local.upstream import FakeUpstream
from shared import upstream as client
from shared.errors import InvalidSignature
from shared.outbound import PinnedPools
from shared.providers.signatures import sandbox_signature
from shared.upstream import OutcomeUnknown, TopupRequest, Upstream
from tests.support import poll

SECRET = "upsec_integration_0123456789"
READ_TIMEOUT = 0.5


@dataclass(frozen=True)
class Got:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes] | None  # None: close the connection without a word


class Stub:
    """An HTTP server on 127.0.0.1 answering every request with `reply(got)`, recording them."""

    def __init__(self, reply: Callable[[Got], Reply]) -> None:
        self.got: list[Got] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def serve(self) -> None:
                got = Got(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(int(self.headers.get("Content-Length") or 0)),
                )
                stub.got.append(got)
                answer = reply(got)
                if answer is None:
                    self.close_connection = True
                    return
                status, headers, body = answer
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = serve

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    started: list[Stub] = []

    def start(reply: Callable[[Got], Reply]) -> Stub:
        started.append(Stub(reply))
        return started[-1]

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def fake():
    with FakeUpstream(SECRET) as upstream:
        yield upstream


@pytest.fixture
def http() -> PinnedPools:
    """The client's pools in local mode (loopback taken), as `make run` has them."""
    return PinnedPools(True, who="upstream", retries=client.SEND_RETRIES)


def upstream_at(url: str, secret: str = SECRET) -> Upstream:
    return Upstream(base_url=url, secret=secret, connect_timeout=0.5, read_timeout=READ_TIMEOUT)


def topup(key: str, sku: str = "sku-gold", callback_url: str = "http://127.0.0.1:9/cb") -> TopupRequest:
    return TopupRequest(
        idempotency_key=key,
        order_id="ord_0123456789abcdef0123",
        sku=sku,
        quantity=2,
        fields={"uid": "10086", "server": "亚服"},
        callback_url=callback_url,
    )


def now() -> int:
    return int(time.time())


# ---------- each behaviour, classified ----------


def test_succeed_is_a_signed_success_with_its_receipt(fake, http):
    answer = client.send(upstream_at(fake.base_url), topup("k-succeed"), now(), http)
    assert (answer.status, answer.idempotency_key) == ("succeeded", "k-succeed")
    assert answer.receipt and "sku-gold" in answer.receipt
    assert (fake.received("k-succeed"), fake.applied("k-succeed")) == (1, 1)


def test_fail_is_a_permanent_failure_and_nothing_is_applied(fake, http):
    fake.script("sku-gold", "fail")
    answer = client.send(upstream_at(fake.base_url), topup("k-fail"), now(), http)
    assert (answer.status, answer.retryable, answer.message) == (
        "failed",
        False,
        "the account does not exist",
    )
    assert fake.applied("k-fail") == 0
    assert client.status(upstream_at(fake.base_url), "k-fail", now(), http).status == "failed"


def test_fail_retryable_may_be_sent_again_with_the_same_key(fake, http):
    fake.script_next("fail_retryable")
    upstream = upstream_at(fake.base_url)
    first = client.send(upstream, topup("k-retry"), now(), http)
    assert (first.status, first.retryable) == ("failed", True)
    assert client.send(upstream, topup("k-retry"), now(), http).status == "succeeded"
    assert (fake.received("k-retry"), fake.applied("k-retry")) == (2, 1)


def test_slow_within_the_read_timeout_succeeds(fake, http):
    fake.script("sku-slow", "slow", delay_ms=100)
    answer = client.send(upstream_at(fake.base_url), topup("k-slow", "sku-slow"), now(), http)
    assert answer.status == "succeeded" and fake.applied("k-slow") == 1


def test_slow_past_the_read_timeout_is_unknown_and_the_status_tells_when_it_is_done(fake, http):
    fake.script("sku-slow", "slow", delay_ms=1500)
    upstream = upstream_at(fake.base_url)
    with pytest.raises(OutcomeUnknown):
        client.send(upstream, topup("k-slower", "sku-slow"), now(), http)
    assert client.status(upstream, "k-slower", now(), http).status == "processing"
    settled = poll(
        lambda: (a := client.status(upstream, "k-slower", now(), http)).status == "succeeded" and a
    )
    assert settled.receipt and (fake.received("k-slower"), fake.applied("k-slower")) == (1, 1)


def test_processing_then_callback_sends_a_callback_that_verifies(fake, http, stubs):
    receiver = stubs(lambda got: (200, {}, b"{}"))
    fake.script("sku-cb", "processing_then_callback", delay_ms=50)
    request = topup("k-callback", "sku-cb", callback_url=f"{receiver.url}/webhooks/upstream/x")
    answer = client.send(upstream_at(fake.base_url), request, now(), http)
    assert answer.status == "processing"
    (got,) = poll(lambda: receiver.got)
    assert got.path == "/webhooks/upstream/x"
    called_back = client.verify_callback(SECRET, got.headers, got.body, now())
    assert (called_back.idempotency_key, called_back.status) == ("k-callback", "succeeded")
    assert called_back.receipt and fake.applied("k-callback") == 1
    assert fake.topup("k-callback").callbacks == [200]


def test_processing_then_asked_is_only_told_by_the_status_endpoint(fake, http):
    fake.script("sku-ask", "processing_then_asked", delay_ms=100)
    upstream = upstream_at(fake.base_url)
    assert client.send(upstream, topup("k-ask", "sku-ask"), now(), http).status == "processing"
    poll(lambda: client.status(upstream, "k-ask", now(), http).status == "succeeded")
    assert fake.applied("k-ask") == 1 and fake.topup("k-ask").callbacks == []


def test_timeout_after_applying_is_unknown_never_resent_and_the_status_says_succeeded(fake, http):
    """The dangerous one: the top-up is applied, the answer never arrives in time."""
    fake.script("sku-gold", "timeout_after_applying", delay_ms=5000)
    upstream = upstream_at(fake.base_url)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        client.send(upstream, topup("k-lost"), now(), http)
    assert time.monotonic() - started < READ_TIMEOUT + 2  # the read timeout, not the upstream's pace
    assert fake.received("k-lost") == 1  # urllib3 did not send it again
    asked = client.status(upstream, "k-lost", now(), http)
    assert (asked.status, asked.idempotency_key) == ("succeeded", "k-lost") and asked.receipt
    assert (fake.received("k-lost"), fake.applied("k-lost")) == (1, 1)


def test_error_5xx_is_unknown_and_the_status_says_the_key_was_never_accepted(fake, http):
    fake.script_next("error_5xx")
    upstream = upstream_at(fake.base_url)
    with pytest.raises(OutcomeUnknown, match="500"):
        client.send(upstream, topup("k-500"), now(), http)
    assert client.status(upstream, "k-500", now(), http).status == "unknown"
    assert client.send(upstream, topup("k-500"), now(), http).status == "succeeded"
    assert (fake.received("k-500"), fake.applied("k-500")) == (2, 1)


def test_refuse_is_a_permanent_failure(fake, http):
    fake.script("sku-no", "refuse")
    answer = client.send(upstream_at(fake.base_url), topup("k-refused", "sku-no"), now(), http)
    assert (answer.status, answer.retryable) == ("failed", False)
    assert fake.applied("k-refused") == 0


def test_sign_wrongly_is_unknown_though_applied_and_the_signed_status_tells(fake, http):
    fake.script("sku-gold", "sign_wrongly")
    upstream = upstream_at(fake.base_url)
    with pytest.raises(OutcomeUnknown, match="signed"):
        client.send(upstream, topup("k-forged"), now(), http)
    assert client.status(upstream, "k-forged", now(), http).status == "succeeded"
    assert (fake.received("k-forged"), fake.applied("k-forged")) == (1, 1)


def test_an_unknown_key_is_unknown(fake, http):
    assert client.status(upstream_at(fake.base_url), "k-never-sent", now(), http).status == "unknown"


# ---------- the idempotency key at the upstream ----------


def test_a_correct_upstream_answers_a_repeated_key_with_its_first_outcome_and_applies_nothing(fake, http):
    upstream = upstream_at(fake.base_url)
    first = client.send(upstream, topup("k-twice"), now(), http)
    fake.script("sku-gold", "fail")  # a new request would fail: a repeated one is not new
    again = client.send(upstream, topup("k-twice"), now(), http)
    assert (again.status, again.receipt) == ("succeeded", first.receipt)
    assert (fake.received("k-twice"), fake.applied("k-twice")) == (2, 1)


def test_a_naive_upstream_applies_every_post_it_receives(http):
    """What the `dedupe` switch is for: against this one, only never sending twice saves the merchant."""
    with FakeUpstream(SECRET, dedupe=False) as naive:
        upstream = upstream_at(naive.base_url)
        client.send(upstream, topup("k-naive"), now(), http)
        client.send(upstream, topup("k-naive"), now(), http)
        assert (naive.received("k-naive"), naive.applied("k-naive")) == (2, 2)


def test_a_request_signed_with_another_secret_is_refused_by_the_upstream(fake, http):
    answer = client.send(upstream_at(fake.base_url, "another-secret-0123456789"), topup("k-key"), now(), http)
    assert (answer.status, answer.retryable, answer.message) == (
        "failed",
        False,
        "upstream refused the request (401)",
    )
    assert fake.applied("k-key") == 0
    with pytest.raises(OutcomeUnknown):  # nor can it ask: the upstream says nothing it signed
        client.status(upstream_at(fake.base_url, "another-secret-0123456789"), "k-key", now(), http)


def test_the_fake_refuses_a_replayed_request(fake, http, stubs):
    """The fake checks the timestamp window as a supplier must: a captured request sent later is refused."""
    request = topup("k-replay")
    body = request.body()
    stale = sandbox_signature(SECRET, body, now() - client.TOLERANCE_SECONDS - 5)
    pool, target = http.pool_for(f"{fake.base_url}/topups")
    answer = pool.urlopen("POST", target, body=body, headers={"Miaofa-Signature": stale})
    assert answer.status == 401 and fake.received("k-replay") == 0


# ---------- a broken or hostile host ----------


def signed(answer: dict, secret: str = SECRET, at: int | None = None) -> Reply:
    body = json.dumps(answer).encode()
    signature = sandbox_signature(secret, body, now() if at is None else at)
    return 200, {"Content-Type": "application/json", "Upstream-Signature": signature}, body


@pytest.mark.parametrize(
    "reply",
    [
        (200, {"Content-Type": "application/json"}, b'{"idempotency_key":"k-x","status":"succeeded"}'),
        signed({"idempotency_key": "k-x", "status": "succeeded"}, secret="a-proxy-guessing-0123456"),
        signed({"idempotency_key": "k-other", "status": "succeeded"}),  # a real answer, for another key
        signed({"idempotency_key": "k-x", "status": "succeeded"}, at=now() - 3600),  # replayed
        signed({"idempotency_key": "k-x", "status": "unknown"}),  # not an answer to a POST
        (200, {"Content-Type": "text/html"}, b"<html>gateway</html>"),
        (200, {"Upstream-Signature": "t=1,v1=00"}, b"not json"),
        (503, {}, b""),
        (302, {"Location": "http://169.254.169.254/"}, b""),
    ],
    ids=["unsigned", "wrong-secret", "other-key", "replayed", "unknown", "html", "garbage", "503", "302"],
)
def test_an_answer_the_upstream_did_not_sign_for_this_request_is_unknown_and_sent_once(stubs, http, reply):
    stub = stubs(lambda got: reply)
    with pytest.raises(OutcomeUnknown):
        client.send(upstream_at(stub.url), topup("k-x"), now(), http)
    assert [got.method for got in stub.got] == ["POST"]


def test_a_connection_reset_after_the_request_is_unknown_and_not_resent(stubs, http):
    stub = stubs(lambda got: None)
    with pytest.raises(OutcomeUnknown):
        client.send(upstream_at(stub.url), topup("k-reset"), now(), http)
    assert len(stub.got) == 1


def test_an_upstream_that_is_not_listening_is_a_retryable_failure_nothing_was_sent(stubs, http):
    stub = stubs(lambda got: None)
    stub.stop()
    answer = client.send(upstream_at(stub.url), topup("k-down"), now(), http)
    assert (answer.status, answer.retryable) == ("failed", True)


def test_a_rate_limited_request_is_a_retryable_failure(stubs, http):
    stub = stubs(lambda got: (429, {}, b""))
    answer = client.send(upstream_at(stub.url), topup("k-429"), now(), http)
    assert (answer.status, answer.retryable) == ("failed", True)


def test_the_status_request_is_retried_once_and_signed_over_its_path(stubs, http):
    replies = iter([(503, {}, b""), signed({"idempotency_key": "k-s", "status": "processing"})])
    stub = stubs(lambda got: next(replies))
    upstream = Upstream(base_url=f"{stub.url}/api/v2/", secret=SECRET, read_timeout=READ_TIMEOUT)
    assert client.status(upstream, "k-s", now(), http).status == "processing"
    first, second = stub.got
    assert (first.method, first.path, second.path) == ("GET", "/api/v2/topups/k-s", "/api/v2/topups/k-s")
    header = first.headers["miaofa-signature"]
    at = int(header.split(",")[0].removeprefix("t="))
    assert header == sandbox_signature(SECRET, b"/topups/k-s", at)  # the path after the base URL's


def test_an_unsigned_404_from_the_status_endpoint_is_not_taken_for_unknown(stubs, http):
    """A default virtual host's 404 page says nothing about the key: only the upstream's word counts."""
    stub = stubs(lambda got: (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"))
    with pytest.raises(OutcomeUnknown):
        client.status(upstream_at(stub.url), "k-404", now(), http)


def test_a_status_timeout_is_unknown(stubs, http):
    release = threading.Event()
    stub = stubs(lambda got: release.wait(5) and None)
    try:
        with pytest.raises(OutcomeUnknown):
            client.status(upstream_at(stub.url), "k-slow-status", now(), http)
    finally:
        release.set()
    assert len(stub.got) == 2  # a GET is asked again once


def test_the_request_the_upstream_gets_is_signed_json_with_the_buyers_fields(stubs, http):
    stub = stubs(lambda got: signed({"idempotency_key": "k-body", "status": "succeeded", "receipt": "ok"}))
    client.send(upstream_at(stub.url), topup("k-body"), now(), http)
    (got,) = stub.got
    assert got.path == "/topups" and got.headers["idempotency-key"] == "k-body"
    assert json.loads(got.body)["fields"] == {"uid": "10086", "server": "亚服"}
    at = int(got.headers["miaofa-signature"].split(",")[0].removeprefix("t="))
    assert got.headers["miaofa-signature"] == sandbox_signature(SECRET, got.body, at)


def test_a_forged_callback_is_refused():
    body = json.dumps({"idempotency_key": "k-cb", "status": "succeeded"}).encode()
    forged = {"Upstream-Signature": sandbox_signature("a-guess-0123456789abcdef", body, now())}
    with pytest.raises(InvalidSignature):
        client.verify_callback(SECRET, forged, body, now())


def test_a_signed_4xx_failure_says_whether_it_may_be_sent_again(stubs, http):
    reply = signed({"idempotency_key": "k-422", "status": "failed", "retryable": True, "message": "补货中"})
    stub = stubs(lambda got: (409, *reply[1:]))
    answer = client.send(upstream_at(stub.url), topup("k-422"), now(), http)
    assert (answer.status, answer.retryable, answer.message) == ("failed", True, "补货中")


def test_a_4xx_that_says_it_succeeded_is_unknown(stubs, http):
    """A contradiction may hide a credit: it is never taken for a failure."""
    reply = signed({"idempotency_key": "k-409", "status": "succeeded"})
    stub = stubs(lambda got: (409, *reply[1:]))
    with pytest.raises(OutcomeUnknown):
        client.send(upstream_at(stub.url), topup("k-409"), now(), http)


def test_an_oversized_answer_is_unknown(stubs, http):
    stub = stubs(
        lambda got: (200, {"Content-Type": "application/json"}, b" " * (client.MAX_ANSWER_BYTES + 10))
    )
    with pytest.raises(OutcomeUnknown):
        client.send(upstream_at(stub.url), topup("k-big"), now(), http)


def test_concurrent_posts_of_one_key_are_applied_once_by_a_correct_upstream(fake, http):
    fake.script("sku-slow", "slow", delay_ms=200)
    # Six requests at once on a loaded machine: a read timeout well past the fake's 200 ms.
    upstream = upstream_at(fake.base_url).model_copy(update={"read_timeout": 3.0})
    answers: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                client.send(upstream, topup("k-race", "sku-slow"), now(), http).status
            )
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {"processing", "succeeded"} and len(answers) == 6
    assert (fake.received("k-race"), fake.applied("k-race")) == (6, 1)


def test_the_fake_is_scripted_and_read_over_http_for_make_run(fake, http):
    pool, target = http.pool_for(f"{fake.base_url}/_fake/script")
    scripted = pool.urlopen("POST", target, body=json.dumps({"sku": "sku-http", "behaviour": "fail"}))
    assert scripted.status == 204
    assert pool.urlopen("POST", target, body=b'{"behaviour": "explode"}').status == 400
    client.send(upstream_at(fake.base_url), topup("k-http", "sku-http"), now(), http)
    pool, target = http.pool_for(f"{fake.base_url}/_fake/topups")
    assert json.loads(pool.urlopen("GET", target).data) == {"k-http": {"received": 1, "applied": 0}}
