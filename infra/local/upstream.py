"""A fake top-up upstream: the protocol of docs/topup.md served on 127.0.0.1, and the reference
implementation a supplier can read (the handlers `_topup` and `_status` are the whole supplier side).

It verifies miaofa's signatures, signs every answer about a key and every callback, and counts, per idempotency key,
the POSTs it received and the times it credited the account (`applied`). What it does with a new
request is scripted per SKU (`script`) or for the next requests (`script_next`); unscripted, it
succeeds. With `dedupe` on (a correct supplier) a key it has accepted is never applied again: a
second POST gets the first one's outcome. With `dedupe` off (a naive supplier) every POST is run
anew, so a test can prove miaofa never sends again after an applied one.

    with FakeUpstream(secret) as fake:
        fake.script("sku-gold", "timeout_after_applying")
        ...  # miaofa sends to fake.base_url
        assert fake.applied(key) == 1 and fake.received(key) == 1

For `make run` the same is reachable over HTTP: `GET {base}/_fake/topups` (the counts) and
`POST {base}/_fake/script` with `{"sku"?, "behaviour", "delay_ms"?}` (no `sku`: the next request).
"""

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.errors import InvalidSignature
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature
from shared.upstream import ANSWER_SIGNATURE, REQUEST_SIGNATURE, TOLERANCE_SECONDS

PREFIX = "/upstream"  # the base URL's path: signatures of status requests do not include it
CALLBACK_DELAYS = (0.0, 0.5, 2.0, 5.0)  # a callback not answered 2xx is sent again after these
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # callbacks go to 127.0.0.1
Answer = tuple[int, dict[str, str], bytes]


class Behaviour(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"  # permanently: nothing applied, the key is spent
    FAIL_RETRYABLE = "fail_retryable"  # nothing applied, the key may be sent again
    SLOW = "slow"  # wait delay_ms, then succeed
    PROCESSING_THEN_CALLBACK = "processing_then_callback"  # credited delay_ms later, then calls back
    PROCESSING_THEN_ASKED = "processing_then_asked"  # credited delay_ms later; only the status says so
    TIMEOUT_AFTER_APPLYING = "timeout_after_applying"  # credits, then holds the answer delay_ms
    ERROR_5XX = "error_5xx"  # 500, nothing applied, nothing recorded
    REFUSE = "refuse"  # 422: a request it will never take
    SIGN_WRONGLY = "sign_wrongly"  # credits, answers with a signature miaofa cannot verify


# How long `delay_ms` is unless scripted: a hold past the longest read timeout miaofa allows (10 s).
DELAY_MS = {Behaviour.TIMEOUT_AFTER_APPLYING: 12_000}


@dataclass(frozen=True)
class Script:
    behaviour: Behaviour
    delay_ms: int

    @classmethod
    def of(cls, behaviour: str, delay_ms: int | None) -> "Script":
        known = Behaviour(behaviour)  # ValueError for a behaviour it does not have
        return cls(known, DELAY_MS.get(known, 200) if delay_ms is None else delay_ms)


@dataclass
class Topup:
    """What the fake knows of one idempotency key."""

    key: str
    sku: str
    quantity: int
    callback_url: str
    status: str = "unknown"  # unknown (never accepted), processing, succeeded, failed
    retryable: bool = False
    receipt: str | None = None
    received: int = 0  # POSTs with this key
    applied: int = 0  # times the account was credited
    asked: int = 0  # status requests for this key
    callbacks: list[int] = field(default_factory=list)  # the HTTP status each callback got (0: none)
    settles_at: float | None = None  # processing_then_asked: when it becomes succeeded


class FakeUpstream:
    def __init__(self, secret: str, dedupe: bool = True, port: int = 0) -> None:
        self.secret = secret
        self.dedupe = dedupe
        self.port = port  # 0: a free one
        self._topups: dict[str, Topup] = {}
        self._by_sku: dict[str, Script] = {}
        self._next: deque[Script] = deque()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # ---- life
    def start(self) -> "FakeUpstream":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # A keep-alive answer written as headers then body would wait out the peer's delayed ACK
            # (~40 ms) under Nagle's algorithm: every request after a connection's first.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def log_message(self, *args: Any) -> None:  # quiet: the fake counts what it got
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # held answers and callback retries end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the fake upstream is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    # ---- scripts and counts (for tests)
    def script(self, sku: str, behaviour: str, delay_ms: int | None = None) -> None:
        """Every new request for `sku` behaves so (until scripted again)."""
        with self._lock:
            self._by_sku[sku] = Script.of(behaviour, delay_ms)

    def script_next(self, *behaviours: str, delay_ms: int | None = None) -> None:
        """The next new requests, whatever their SKU, behave so, one each, before any SKU's script."""
        with self._lock:
            self._next.extend(Script.of(b, delay_ms) for b in behaviours)

    def topup(self, key: str) -> Topup | None:
        with self._lock:
            found = self._topups.get(key)
            return None if found is None else Topup(**{**asdict(found), "callbacks": list(found.callbacks)})

    def applied(self, key: str) -> int:
        return self._count(key, "applied")

    def received(self, key: str) -> int:
        return self._count(key, "received")

    def asked(self, key: str) -> int:
        return self._count(key, "asked")

    def _count(self, key: str, what: str) -> int:
        with self._lock:
            topup = self._topups.get(key)
            return 0 if topup is None else int(getattr(topup, what))

    # ---- the protocol
    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        body = http.rfile.read(int(http.headers.get("Content-Length") or 0))
        path = http.path.split("?", 1)[0]
        if path.startswith(PREFIX + "/"):
            status, headers, data = self._route(http.command, path[len(PREFIX) :], http.headers, body)
        else:
            status, headers, data = _plain(404, "not found")
        try:
            http.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(data))}.items():
                http.send_header(name, value)
            http.end_headers()
            http.wfile.write(data)
        except OSError:  # the client gave up (timeout_after_applying)
            http.close_connection = True

    def _route(self, method: str, path: str, headers: Any, body: bytes) -> Answer:
        if path == "/_fake/topups" and method == "GET":
            with self._lock:
                counts = {k: {"received": t.received, "applied": t.applied} for k, t in self._topups.items()}
            return 200, {"Content-Type": "application/json"}, json.dumps(counts).encode()
        if path == "/_fake/script" and method == "POST":
            return self._control(body)
        if path == "/topups" and method == "POST":
            return self._topup(headers.get(REQUEST_SIGNATURE), body)
        if path.startswith("/topups/") and method == "GET":
            return self._status(headers.get(REQUEST_SIGNATURE), path)
        return _plain(404, "not found")

    def _topup(self, signature: str | None, body: bytes) -> Answer:
        """`POST /topups`: credit the account once per idempotency key."""
        try:
            verify_sandbox_signature(
                self.secret, signature, body, int(time.time()), TOLERANCE_SECONDS, REQUEST_SIGNATURE
            )
            asked = json.loads(body)
            key, sku, quantity = str(asked["idempotency_key"]), str(asked["sku"]), int(asked["quantity"])
            callback_url, _ = str(asked["callback_url"]), str(asked["order_id"])
            if quantity < 1 or not isinstance(asked.get("fields", {}), dict):
                raise ValueError
        except InvalidSignature as refused:  # about no key it can trust: plain, as any 4xx is a refusal
            return _plain(401, refused.message)
        except (KeyError, TypeError, ValueError):
            return _plain(400, "idempotency_key, order_id, sku, quantity, fields and callback_url please")
        with self._lock:
            topup = self._topups.setdefault(key, Topup(key, sku, quantity, callback_url))
            topup.received += 1
            spent = topup.status != "unknown" and not (topup.status == "failed" and topup.retryable)
            if self.dedupe and spent:  # the first one's outcome; nothing applied again
                return self._answer(self._settled(topup))
            script = (
                self._next.popleft() if self._next else self._by_sku.get(sku, Script(Behaviour.SUCCEED, 0))
            )
            topup.status, topup.retryable, topup.settles_at = "processing", False, None
        return self._run(script, topup)

    def _run(self, script: Script, topup: Topup) -> Answer:
        delay = script.delay_ms / 1000
        match script.behaviour:
            case Behaviour.SUCCEED:
                return self._answer(self._credit(topup))
            case Behaviour.SLOW:
                self._stopping.wait(delay)
                return self._answer(self._credit(topup))
            case Behaviour.FAIL | Behaviour.FAIL_RETRYABLE | Behaviour.REFUSE:
                with self._lock:
                    topup.status, topup.retryable = "failed", script.behaviour == Behaviour.FAIL_RETRYABLE
                    message = "the account does not exist" if topup.retryable is False else "try again later"
                return self._answer(topup, 422 if script.behaviour == Behaviour.REFUSE else 200, message)
            case Behaviour.PROCESSING_THEN_CALLBACK:
                threading.Thread(target=self._call_back, args=(topup, delay), daemon=True).start()
                return self._answer(topup)
            case Behaviour.PROCESSING_THEN_ASKED:
                with self._lock:
                    topup.settles_at = time.monotonic() + delay
                return self._answer(topup)
            case Behaviour.TIMEOUT_AFTER_APPLYING:
                self._credit(topup)
                self._stopping.wait(delay)  # longer than miaofa's read timeout: it never sees this
                return self._answer(topup)
            case Behaviour.ERROR_5XX:
                with self._lock:
                    topup.status = "unknown"  # as if it had never come
                return _plain(500, "internal error")
            case Behaviour.SIGN_WRONGLY:
                self._credit(topup)
                status, headers, body = self._answer(topup)
                headers[ANSWER_SIGNATURE] = sandbox_signature("not-" + self.secret, body, int(time.time()))
                return status, headers, body

    def _status(self, signature: str | None, path: str) -> Answer:
        """`GET /topups/{key}`, signed over the path relative to the base URL."""
        try:
            verify_sandbox_signature(
                self.secret, signature, path.encode(), int(time.time()), TOLERANCE_SECONDS, REQUEST_SIGNATURE
            )
        except InvalidSignature as refused:
            return _plain(401, refused.message)
        key = path[len("/topups/") :]
        with self._lock:
            topup = self._topups.get(key)
            if topup is None:
                return self._signed(404, {"idempotency_key": key, "status": "unknown"})
            topup.asked += 1
            self._settled(topup)
            return self._answer(topup, 404 if topup.status == "unknown" else 200)

    def _credit(self, topup: Topup) -> Topup:
        """Credit the account: the one thing that must happen once per key."""
        with self._lock:
            topup.applied += 1
            topup.status, topup.retryable = "succeeded", False
            topup.receipt = f"{topup.quantity} x {topup.sku} credited, ref UP{secrets.token_hex(4).upper()}"
        return topup

    def _settled(self, topup: Topup) -> Topup:
        with self._lock:
            if topup.settles_at is not None and time.monotonic() >= topup.settles_at:
                topup.settles_at = None
                self._credit(topup)
        return topup

    def _call_back(self, topup: Topup, delay: float) -> None:
        if self._stopping.wait(delay):
            return
        self._credit(topup)
        body = json.dumps(self._state(topup), ensure_ascii=False).encode()
        for pause in CALLBACK_DELAYS:
            if self._stopping.wait(pause):
                return
            signature = sandbox_signature(self.secret, body, int(time.time()))
            request = urllib.request.Request(
                topup.callback_url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", ANSWER_SIGNATURE: signature},
            )
            try:
                with _DIRECT.open(request, timeout=5) as answered:
                    code = answered.status
            except urllib.error.HTTPError as refused:
                code = refused.code
            except OSError:
                code = 0
            with self._lock:
                topup.callbacks.append(code)
            if 200 <= code < 300:
                return

    def _answer(self, topup: Topup, status: int = 200, message: str | None = None) -> Answer:
        return self._signed(status, {**self._state(topup), **({"message": message} if message else {})})

    def _state(self, topup: Topup) -> dict[str, Any]:
        """What the upstream says about a key: its status, the receipt once credited, whether a
        failure may be sent again."""
        with self._lock:
            state: dict[str, Any] = {"idempotency_key": topup.key, "status": topup.status}
            if topup.status == "succeeded":
                state["receipt"] = topup.receipt
            if topup.status == "failed":
                state["retryable"] = topup.retryable
        return state

    def _signed(self, status: int, answer: dict[str, Any]) -> Answer:
        body = json.dumps(answer, ensure_ascii=False).encode()
        signature = sandbox_signature(self.secret, body, int(time.time()))
        return status, {"Content-Type": "application/json", ANSWER_SIGNATURE: signature}, body

    def _control(self, body: bytes) -> Answer:
        try:
            asked = json.loads(body)
            behaviour, delay = str(asked["behaviour"]), asked.get("delay_ms")
            delay_ms = None if delay is None else int(delay)
            if asked.get("sku"):
                self.script(str(asked["sku"]), behaviour, delay_ms)
            else:
                self.script_next(behaviour, delay_ms=delay_ms)
        except (KeyError, TypeError, ValueError):
            return _plain(400, f"behaviour: one of {', '.join(Behaviour)}")
        return 204, {}, b""


def _plain(status: int, message: str) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
