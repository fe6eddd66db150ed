"""An HTTP server that does what API Gateway's HTTP API does: match the template's routes, run the
Lambda authorizer (payload 2.0, simple responses, cached by identity), and hand the function a
payload-2.0 event. Requests are logged by method and path only: no query string, no headers."""

import base64
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.aws import ACCOUNT
from infra.local.lambdas import LocalFunction
from infra.local.template import Route

AUTHORIZER_CACHE_SECONDS = 300
TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")

# A local extra (sandbox provider pages, redirects): (method, path, query, headers, body) -> (status, headers, body)
Extra = Callable[[str, str, dict[str, str], dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class PortUnavailable(Exception):
    """The gateway cannot listen on its port (`MIAOFA_PORT`)."""

    def __init__(self, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on 127.0.0.1:{port}: {reason}")
        self.port, self.reason = port, reason


class Gateway:
    def __init__(
        self, routes: list[Route], functions: dict[str, LocalFunction], port: int, quiet: bool
    ) -> None:
        self.routes, self.functions, self.quiet = routes, functions, quiet
        self.extras: dict[str, Extra] = {}  # path prefix -> handler
        self._auth_cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._auth_lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle's algorithm the body waits for the
            # client's delayed ACK (~40 ms on Linux), which every response here would pay.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                gateway.serve(self)

            def __getattr__(self, name: str) -> Any:
                # Every method, not only those with a do_<METHOD>: http.server would answer the rest
                # (TRACE, made-up ones) with a 501 HTML page, API Gateway with its JSON 404.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                if not gateway.quiet:
                    path = urlsplit(self.path).path
                    sys.stderr.write(f"{self.command} {path} {args[1] if len(args) > 1 else ''}\n")

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # listen backlog; the default 5 resets a burst of buyers
            daemon_threads = True

        try:
            self.server = Server(("127.0.0.1", port), Handler)
        except OSError as error:  # taken by another process, or below 1024 without the right
            raise PortUnavailable(port, error.strerror or str(error)) from None
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return _write(request, 400, {"content-type": "application/json"}, b'{"message":"Bad Request"}')
        body = request.rfile.read(length) if length else b""
        headers = _combined((k.lower(), v) for k, v in request.headers.items())
        for prefix, extra in self.extras.items():
            if url.path == prefix or url.path.startswith(prefix + "/"):
                status, out_headers, out_body = extra(
                    request.command, url.path, dict(parse_qsl(url.query)), headers, body
                )
                return _write(request, status, out_headers, out_body)
        status, out_headers, out_body = self.dispatch(
            request.command, url.path, url.query, headers, body, request.client_address[0]
        )
        _write(request, status, out_headers, out_body)

    def dispatch(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                break
        else:
            return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
        event = _event(route, method, path, query, headers, body, match.groupdict(), source_ip)
        if route.authorizer:
            context = self._authorize(route, event)
            if context is None:
                status = 401 if not headers.get("authorization") else 403
                message = b'{"message":"Unauthorized"}' if status == 401 else b'{"message":"Forbidden"}'
                return status, {"content-type": "application/json"}, message
            event["requestContext"]["authorizer"] = {"lambda": context}
        try:
            result = self.functions[route.function].invoke(event)
        except Exception:  # a crashed function is a 500 from API Gateway, as on AWS
            import traceback

            traceback.print_exc()
            return 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
        return _response(result)

    def _authorize(self, route: Route, event: dict[str, Any]) -> dict[str, Any] | None:
        identity = event["headers"].get("authorization")
        if not identity:
            return None
        key, now = (route.authorizer or "", identity), time.monotonic()
        with self._auth_lock:
            cached = self._auth_cache.get(key)
            if cached and cached[0] > now:
                return cached[1]
        auth_event = {
            **event,
            "type": "REQUEST",
            "identitySource": [identity],
            "routeArn": f"arn:aws:execute-api:us-east-1:{ACCOUNT}:local/$default/{event['routeKey']}",
        }
        result = self.functions[route.authorizer or ""].invoke(auth_event)
        context = (result.get("context") or {}) if result.get("isAuthorized") else None
        with self._auth_lock:
            self._auth_cache[key] = (now + AUTHORIZER_CACHE_SECONDS, context)
        return context


def _event(
    route: Route,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str],
    source_ip: str,
) -> dict[str, Any]:
    content_type = headers.get("content-type", "")
    is_text = not body or content_type.startswith(TEXT_TYPES)
    if is_text:
        try:
            body.decode()
        except UnicodeDecodeError:
            is_text = False  # not text after all: hand it over base64-encoded, as API Gateway does
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body.decode() if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = _combined(parse_qsl(query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = path_parameters
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    return event


def _combined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Names and values as payload 2.0 has them: a repeated name's values joined by commas, as API
    Gateway joins them (`?limit=5&limit=` is `"5,"`, not the last one alone)."""
    combined: dict[str, str] = {}
    for name, value in pairs:
        combined[name] = f"{combined[name]},{value}" if name in combined else value
    return combined


def _response(result: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"content-type": "application/json"}, json.dumps(result).encode()
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    if result.get("cookies"):
        headers["set-cookie"] = result["cookies"][0]
    return int(result["statusCode"]), headers, raw


def _write(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    request.send_response(status)
    if any("\r" in v or "\n" in v for v in headers.values()):  # never let a value start a new header
        status, headers, body = (
            500,
            {"content-type": "application/json"},
            b'{"message":"Internal Server Error"}',
        )
    for name, value in headers.items():
        if name not in ("content-length", "connection"):
            request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)
