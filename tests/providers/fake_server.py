"""What the fake provider servers of the kits (tests/providers/<name>.py) share: an HTTP server on
127.0.0.1 with its life (`start()` / `stop()` / `url`), the record of every request it got, and the
failures a test scripts for the next requests.

A fake subclasses `FakeServer` and writes only its provider's side: `record()` (what one request
says, in the provider's terms), `answer()` (the provider's answer to it) and `failure()` (the
provider's error answer, for a scripted failure). For each request the server records it, waits out
a scripted hang, then answers it with a scripted failure, else scripted garbage, else `answer()`.

Each kind of script is its own queue: a request takes the next hang, and then the next failure or,
without one, the next garbage. `SigningFakeServer` adds the scripts of a fake that signs its
answers (a bad signature, a rewritten answer), which its kit takes when it signs.
"""

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

R = TypeVar("R")  # a fake's record of one request
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


class FakeServer(Generic[R]):
    """A provider's API on 127.0.0.1 (a free port), answering on its own daemon threads."""

    label = "provider"  # as the fake is named in its messages ("the fake Stripe is not started")
    methods: tuple[str, ...] = ("GET", "POST")  # the HTTP methods it answers (others: 501)
    protocol_version = "HTTP/1.0"
    hang_seconds = 5.0  # how long hang_next() holds an answer unless told
    garbage_type = "text/html"  # the Content-Type of scripted garbage

    def __init__(self) -> None:
        self.requests: list[R] = []
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._scripts: defaultdict[str, deque[Any]] = defaultdict(deque)
        self._server: ThreadingHTTPServer | None = None

    # ---- the provider's side (subclasses)
    def record(self, method: str, target: str, headers: dict[str, str], body: bytes) -> R:
        """What the request says (`target`: the path and query as sent; header names lower-cased)."""
        raise NotImplementedError

    def answer(self, request: R) -> Answer:
        raise NotImplementedError

    def failure(self, request: R, status: int) -> Answer:
        """The provider's error answer with `status` (what fail_next() scripts)."""
        raise NotImplementedError

    # ---- life
    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        assert self._server is not None, f"the fake {self.label} is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = fake.protocol_version

            def serve(self) -> None:
                fake._serve(self)

            def log_message(self, *args: Any) -> None:  # quiet: the fake records what it got
                pass

        for method in self.methods:
            setattr(Handler, f"do_{method}", Handler.serve)
        self._released.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self._released.set()  # hung answers end now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- what a test scripts
    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """The next `n` requests get `status` with the provider's error answer."""
        self._script("failure", status, n)

    def hang_next(self, n: int = 1, seconds: float | None = None) -> None:
        """The next `n` requests are answered only after `seconds` (or when the fake stops)."""
        self._script("hang", self.hang_seconds if seconds is None else seconds, n)

    def garble_next(
        self, body: bytes = b"<html>502 Bad Gateway</html>", status: int = 200, n: int = 1
    ) -> None:
        """The next `n` requests get `body` instead of the provider's answer."""
        self._script("garbage", (status, body), n)

    def reset_scripts(self) -> None:
        """Forget what was scripted and not yet taken."""
        with self._lock:
            self._scripts.clear()

    def reset(self) -> None:
        """Forget scripts and recorded requests (what the provider holds stays)."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    def recorded(self, where: Callable[[R], bool]) -> list[R]:
        """The requests recorded so far that `where` holds for, oldest first."""
        with self._lock:
            return [request for request in self.requests if where(request)]

    def _script(self, kind: str, value: Any, n: int) -> None:
        with self._lock:
            self._scripts[kind].extend([value] * n)

    def _take(self, kind: str) -> Any | None:
        """The next scripted `kind`, taken (None: none is scripted)."""
        with self._lock:
            queue = self._scripts.get(kind)
            return queue.popleft() if queue else None

    # ---- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = self.record(handler.command, handler.path, headers, body)
        with self._lock:
            self.requests.append(request)
            hang = self._take("hang")
        if hang is not None:
            self._released.wait(hang)
        with self._lock:
            status = self._take("failure")
            garbage = self._take("garbage") if status is None else None
        if status is not None:
            answer = self.failure(request, status)
        elif garbage is not None:
            answer = (garbage[0], {"Content-Type": self.garbage_type}, garbage[1])
        else:
            answer = self.answer(request)
        self._send(handler, *answer)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up waiting (a scripted hang past its timeout)
            pass


class SigningFakeServer(FakeServer[R]):
    """A fake whose answers carry the provider's signature (Alipay, WeChat Pay)."""

    def bad_signature_next(self, n: int = 1) -> None:
        """The next `n` signed answers carry a signature that does not match their body."""
        self._script("bad_signature", True, n)

    def rewrite_next(self, change: Callable[[dict[str, Any]], dict[str, Any]], n: int = 1) -> None:
        """The next `n` answers go through `change` before they are signed (a signed but odd answer;
        which answers the fake rewrites, its kit says)."""
        self._script("rewrite", change, n)

    def _signature_is_bad(self) -> bool:
        return self._take("bad_signature") is not None

    def _rewritten(self, answer: dict[str, Any]) -> dict[str, Any]:
        change = self._take("rewrite")
        return answer if change is None else change(answer)


class InProcessResponse:
    """What `shared.providers.http.call` reads of a urllib3 response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self._body = status, headers, body

    def read(self, amount: int | None = None) -> bytes:
        return self._body if amount is None else self._body[:amount]

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


class InProcess:
    """A urllib3 pool stand-in that hands each request to a fake in this process: a provider built
    with `http=InProcess(fake)` speaks to the fake's formats without a socket (unit tests). The
    request is recorded; scripted hangs and failures are not played (they need the server)."""

    def __init__(self, server: FakeServer[Any]) -> None:
        self.server = server

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        **_: Any,
    ) -> InProcessResponse:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lowered = {name.lower(): value for name, value in (headers or {}).items()}
        request = self.server.record(method, target, lowered, body or b"")
        with self.server._lock:
            self.server.requests.append(request)
        return InProcessResponse(*self.server.answer(request))
