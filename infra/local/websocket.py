"""What API Gateway's WebSocket API does, on loopback: a WebSocket server that hands the template's
routes API Gateway WebSocket proxy events, and the management API the functions call to talk back.

Per connection: a connection id; `$connect` with the handshake's headers (a non-2xx statusCode, or a
crash, refuses the connection with that status); each message routed by the API's
RouteSelectionExpression (`$request.body.action`), `$default` when nothing matches; `$disconnect` when
the socket closes, however it closes. Handlers run on a thread pool, so a slow one never stalls the
event loop; one connection's messages are handled one at a time, in order.

The management API answers `POST` (send), `GET` (info) and `DELETE` (close) on
`/<stage>/@connections/<id>`, and 410 `GoneException` for a connection that is not open, as
boto3's `apigatewaymanagementapi` client expects. It does not check the SigV4 signature.
"""

import asyncio
import base64
import contextlib
import json
import secrets
import sys
import threading
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from infra.local.aws import ACCOUNT, REGION
from infra.local.lambdas import LocalFunction
from infra.local.template import SocketApi

API_ID = "local"
API_HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"  # what the template's URLs of the API become
MAX_MESSAGE = 128 * 1024  # API Gateway's WebSocket message limit
HANDLER_THREADS = 64
SEND_TIMEOUT = 5.0


def connection_id() -> str:
    """An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`), URL-safe so it can sit in a path."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Opened:
    """An open connection: the socket and what API Gateway remembers about it."""

    id: str
    socket: ServerConnection
    source_ip: str
    user_agent: str
    domain: str
    connected_at: datetime
    last_active: datetime = field(default_factory=lambda: datetime.now(UTC))


class SocketGateway:
    def __init__(self, api: SocketApi, functions: dict[str, LocalFunction], quiet: bool = True) -> None:
        self.api, self.functions, self.quiet = api, functions, quiet
        self.open: dict[str, Opened] = {}
        self._handshaking: dict[ServerConnection, Opened] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="websocket", daemon=True)
        self._pool = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="websocket-handler")
        self._server: Server | None = None
        self.port = 0
        self.management = ManagementApi(self)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def endpoint(self) -> str:
        """The management API's endpoint_url (API Gateway's `https://{api}.execute-api.{region}…/{stage}`)."""
        stage = f"/{self.api.stage}" if self.api.stage else ""
        return f"http://127.0.0.1:{self.management.port}{stage}"

    def local_urls(self) -> dict[str, str]:
        """The API's URLs as the template spells them (`wss://`/`https://{api}.execute-api…`) -> here."""
        return {
            f"wss://{API_HOST}": f"ws://127.0.0.1:{self.port}",
            f"https://{API_HOST}": f"http://127.0.0.1:{self.management.port}",
        }

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self.management.start()

    def stop(self) -> None:
        self.management.stop()
        if self._server:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _listen(self) -> None:
        self._server = await serve(
            self._session,
            "127.0.0.1",
            0,
            process_request=self._connect,
            max_size=MAX_MESSAGE,
            server_header=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    # ---- the socket's life
    async def _connect(self, socket: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None  # not a handshake: websockets answers it (426)
        headers = dict(request.headers.raw_items())
        address = socket.remote_address
        opened = Opened(
            id=connection_id(),
            socket=socket,
            source_ip=str(address[0]) if address else "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            domain=request.headers.get("Host", "127.0.0.1"),
            connected_at=datetime.now(UTC),
        )
        event = self._event("$connect", "CONNECT", opened)
        event["headers"] = headers
        event["multiValueHeaders"] = {name: request.headers.get_all(name) for name in headers}
        query = urlsplit(request.path).query
        if query:
            event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
            event["multiValueQueryStringParameters"] = {
                key: [v for k, v in parse_qsl(query, keep_blank_values=True) if k == key]
                for key in event["queryStringParameters"]
            }
        if "$connect" in self.api.routes:
            try:
                result = await self._invoke("$connect", event)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                return socket.respond(500, "")
            status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
            if not 200 <= status < 300:
                return socket.respond(status, "")
        self._handshaking[socket] = opened
        self._log(f"CONNECT {opened.id}")
        return None

    async def _session(self, socket: ServerConnection) -> None:
        opened = self._handshaking.pop(socket)
        self.open[opened.id] = opened
        try:
            async for message in socket:
                opened.last_active = datetime.now(UTC)
                await self._message(opened, message)
        except ConnectionClosed:
            pass
        finally:
            self.open.pop(opened.id, None)
            event = self._event("$disconnect", "DISCONNECT", opened)
            event["headers"] = {"Host": opened.domain, "X-Forwarded-For": opened.source_ip}
            event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
            event["requestContext"]["disconnectStatusCode"] = socket.close_code or 1006
            event["requestContext"]["disconnectReason"] = socket.close_reason or ""
            self._log(f"DISCONNECT {opened.id}")
            if "$disconnect" in self.api.routes:
                try:
                    await self._invoke("$disconnect", event)
                except Exception:  # API Gateway's $disconnect is best effort: nothing to answer
                    traceback.print_exc(file=sys.stderr)

    async def _message(self, opened: Opened, message: str | bytes) -> None:
        text = message if isinstance(message, str) else None
        route = self._route(text)
        event = self._event(route or "$default", "MESSAGE", opened)
        event["requestContext"]["messageId"] = base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()
        event["body"] = text if text is not None else base64.b64encode(message).decode()  # type: ignore[arg-type]
        event["isBase64Encoded"] = text is None
        self._log(f"MESSAGE {opened.id} {route}")
        if route is None:  # no route and no $default: API Gateway's answer
            return await self._answer(opened, "Forbidden", event)
        try:
            await self._invoke(route, event)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            await self._answer(opened, "Internal server error", event)

    def _route(self, body: str | None) -> str | None:
        """The route key the RouteSelectionExpression picks for a message, else `$default` (if any)."""
        prefix = "$request.body."
        expression = self.api.selection_expression
        if body is not None and expression.startswith(prefix):
            try:
                value: Any = json.loads(body)
            except ValueError:
                value = None
            for part in expression[len(prefix) :].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str) and value in self.api.routes and not value.startswith("$"):
                return value
        return "$default" if "$default" in self.api.routes else None

    async def _answer(self, opened: Opened, message: str, event: dict[str, Any]) -> None:
        answer = {
            "message": message,
            "connectionId": opened.id,
            "requestId": event["requestContext"]["requestId"],
        }
        with contextlib.suppress(ConnectionClosed):
            await opened.socket.send(json.dumps(answer))

    async def _invoke(self, route: str, event: dict[str, Any]) -> Any:
        function = self.functions[self.api.routes[route]]
        return await self._loop.run_in_executor(self._pool, function.invoke, event)

    def _event(self, route: str, kind: str, opened: Opened) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "requestContext": {
                "routeKey": route,
                "eventType": kind,
                "extendedRequestId": base64.b64encode(secrets.token_bytes(6)).decode(),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "messageDirection": "IN",
                "stage": self.api.stage or "$default",
                "connectedAt": _millis(opened.connected_at),
                "requestTimeEpoch": _millis(now),
                "identity": {"sourceIp": opened.source_ip, "userAgent": opened.user_agent},
                "requestId": str(uuid.uuid4()),
                "domainName": opened.domain,
                "connectionId": opened.id,
                "apiId": API_ID,
                "accountId": ACCOUNT,
            },
            "isBase64Encoded": False,
        }

    def _log(self, line: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"WS {line}\n")

    # ---- what the management API does, from its threads
    def send(self, connection: str, data: bytes) -> bool:
        """Send `data` to a connection (a text frame if it is UTF-8); False if it is not open."""
        opened = self.open.get(connection)
        if opened is None:
            return False
        try:
            frame: str | bytes = data.decode()
        except UnicodeDecodeError:
            frame = data
        try:
            asyncio.run_coroutine_threadsafe(opened.socket.send(frame), self._loop).result(SEND_TIMEOUT)
        except ConnectionClosed:
            return False
        except TimeoutError:  # a client that reads nothing: dropped, as API Gateway drops a stuck one
            self.close(connection)
            return False
        return True

    def close(self, connection: str) -> bool:
        """Close a connection (its `$disconnect` follows); False if it is not open."""
        opened = self.open.pop(connection, None)
        if opened is None:
            return False
        asyncio.run_coroutine_threadsafe(opened.socket.close(1000, "Going away"), self._loop)
        return True


class ManagementApi:
    """`https://{api}.execute-api.{region}.amazonaws.com/{stage}/@connections/{id}`, on loopback."""

    def __init__(self, sockets: SocketGateway) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self._answer(*sockets_answer(sockets, "POST", self.path, self._body()))

            def do_GET(self) -> None:
                self._answer(*sockets_answer(sockets, "GET", self.path, self._body()))

            def do_DELETE(self) -> None:
                self._answer(*sockets_answer(sockets, "DELETE", self.path, self._body()))

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """No access log: a path holds a connection id."""

        class Http(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

        self.server = Http(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="ws-management", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(status: int, kind: str, message: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind}
    return status, headers, json.dumps({"message": message}).encode()


def sockets_answer(
    sockets: SocketGateway, method: str, path: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """The management API's answer to one request."""
    stage = f"/{sockets.api.stage}" if sockets.api.stage else ""
    prefix = f"{stage}/@connections/"
    url_path = urlsplit(path).path
    if not url_path.startswith(prefix) or "/" in url_path[len(prefix) :]:
        return _error(403, "ForbiddenException", "Forbidden")
    connection = unquote(url_path[len(prefix) :])
    opened = sockets.open.get(connection)
    if method == "POST":
        if len(body) > MAX_MESSAGE:
            return _error(413, "PayloadTooLargeException", "Message too long")
        done = sockets.send(connection, body)
    elif method == "DELETE":
        done = sockets.close(connection)
    else:
        done = opened is not None
    if not done or opened is None:
        return _error(410, "GoneException", None)
    if method == "GET":
        info = {
            "connectedAt": opened.connected_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "lastActiveAt": opened.last_active.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "identity": {"sourceIp": opened.source_ip, "userAgent": opened.user_agent},
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
    return (204 if method == "DELETE" else 200), {}, b""
