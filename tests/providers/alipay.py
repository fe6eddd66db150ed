"""Alipay's side for the conformance suite and the provider tests: a fake open-platform gateway on
127.0.0.1 and async notifies signed as Alipay signs them.

The fake speaks the documented formats (common parameters + `biz_content`, form-encoded POST or a
GET query string as python-alipay-sdk sends; answers `{"<method>_response": {...}, "sign": "..."}`
signed over the response object's text as written). It verifies every request's RSA2 sign with the
app's public key and signs its answers with its own ("Alipay's") private key. Its signing code is
written here on its own, not borrowed from shared/providers/alipay.py, so the two can disagree.

Currency: a domestic notify carries no currency. A hostile but validly signed notify could still
claim one the way cross-border trades do (`trans_currency`, the currency `total_amount` is priced
in), so `paid(order, currency=...)` sends that field, and the shop must refuse it.
"""

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.money import Money
from shared.orders import Order, Status
from tests.providers import Callback
from tests.support import event

BEIJING = timezone(timedelta(hours=8))
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
GATEWAY_PATH = "/gateway.do"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signing_text(params: dict[str, str], without: tuple[str, ...]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in without and v)


def sign(key: rsa.RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def verifies(key: rsa.RSAPublicKey, text: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def beijing(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fen(text: str) -> int | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")) or "e" in text.lower():
        return None
    return int(value * 100)


def stable(kind: str, *parts: object) -> str:
    return hashlib.sha256(":".join([kind, *map(str, parts)]).encode()).hexdigest()


def trade_number(out_trade_no: str) -> str:
    """Alipay's trade_no for the shop's order: 28 digits, the same every time for one order."""
    return "2024" + str(int(stable("trade", out_trade_no), 16))[:24]


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    amount: int  # fen
    status: str = "WAIT_BUYER_PAY"
    refunds: dict[str, int] = field(default_factory=dict)  # out_request_no -> fen


@dataclass(frozen=True)
class Request:
    http_method: str
    params: dict[str, str]
    biz: dict[str, Any]
    signed: bool  # the request's sign verified with the app's public key


class FakeAlipay:
    """Alipay's open-platform gateway on 127.0.0.1: trades and refunds in memory, scriptable faults."""

    def __init__(self, app_id: str, app_public: rsa.RSAPublicKey, alipay_key: rsa.RSAPrivateKey) -> None:
        self.app_id, self.app_public, self.alipay_key = app_id, app_public, alipay_key
        self.trades: dict[str, Trade] = {}
        self.requests: list[Request] = []
        self._faults: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ---- lifecycle
    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET", b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake._handle(self, "POST", self.rfile.read(length))

            def log_message(self, *args) -> None:
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{GATEWAY_PATH}"

    def stop(self) -> None:
        self._stopping.set()  # hanging answers give up
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- what a test scripts
    def fail_next(self, n: int = 1, status: int = 503) -> None:
        self._script(n, ("status", status))

    def hang_next(self, n: int = 1, seconds: float = 3.0) -> None:
        """Answer the next n requests only after `seconds` (beyond the client's read timeout)."""
        self._script(n, ("hang", seconds))

    def bad_sign_next(self, n: int = 1) -> None:
        self._script(n, ("bad_sign", None))

    def garbage_next(self, body: bytes, n: int = 1) -> None:
        self._script(n, ("garbage", body))

    def edit_next(self, edit: Callable[[dict[str, Any]], dict[str, Any]], n: int = 1) -> None:
        """Change the next n response objects before they are signed (a signed but odd answer)."""
        self._script(n, ("edit", edit))

    def reset(self) -> None:
        """Forget scripted faults and recorded requests (trades stay: each test uses its own orders)."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def mark_paid(self, out_trade_no: str, amount: int) -> Trade:
        """The buyer paid (whether or not its notify reaches the shop)."""
        with self._lock:
            trade = self._trade(out_trade_no, amount)
            if trade.status == "WAIT_BUYER_PAY":
                trade.status = "TRADE_SUCCESS"
            return trade

    def calls(self, method: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.params.get("method") == method]

    def _script(self, n: int, fault: tuple[str, Any]) -> None:
        with self._lock:
            self._faults.extend([fault] * n)

    def _trade(self, out_trade_no: str, amount: int) -> Trade:
        if out_trade_no not in self.trades:
            self.trades[out_trade_no] = Trade(out_trade_no, trade_number(out_trade_no), amount)
        return self.trades[out_trade_no]

    # ---- the gateway
    def _handle(self, handler: BaseHTTPRequestHandler, http_method: str, body: bytes) -> None:
        query = urlsplit(handler.path).query
        pairs = parse_qsl(query, keep_blank_values=True) + parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True
        )
        params = dict(pairs)
        signed = len(params) == len(pairs) and verifies(
            self.app_public, signing_text(params, without=("sign",)), params.get("sign", "")
        )
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            biz = {}
        with self._lock:
            self.requests.append(Request(http_method, params, biz if isinstance(biz, dict) else {}, signed))
            fault = self._faults.popleft() if self._faults else ("", None)
        kind, arg = fault
        if kind == "hang" and self._stopping.wait(arg):
            return
        if kind == "status":
            return self._send(handler, arg, b"Service Unavailable", "text/plain")
        if kind == "garbage":
            return self._send(handler, 200, arg, "text/html;charset=utf-8")
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response"
        if params.get("app_id") != self.app_id:
            return self._unsigned(handler, name, "40002", "isv.invalid-app-id", "无效的AppID参数")
        if not signed or params.get("sign_type") != "RSA2" or params.get("charset", "").lower() != "utf-8":
            return self._unsigned(handler, name, "40002", "isv.invalid-signature", "验签出错")
        if method == "alipay.trade.page.pay":  # the buyer's browser arrives at the cashier
            with self._lock:
                amount = fen(str(biz.get("total_amount", "")))
                if amount is not None and biz.get("out_trade_no"):
                    self._trade(str(biz["out_trade_no"]), amount)
            return self._send(handler, 200, "<html>支付宝收银台</html>".encode(), "text/html;charset=utf-8")
        with self._lock:
            answer = self._answer(method, biz)
        if kind == "edit":
            answer = arg(answer)
        self._signed(handler, name, answer, bad=kind == "bad_sign")

    def _answer(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        ok = {"code": "10000", "msg": "Success"}
        if method == "alipay.trade.precreate":
            amount = fen(str(biz.get("total_amount", "")))
            if amount is None or not biz.get("out_trade_no") or not biz.get("subject"):
                return _failed("40002", "isv.invalid-parameter", "参数无效", code_msg="Invalid Arguments")
            trade = self._trade(str(biz["out_trade_no"]), amount)
            if trade.status != "WAIT_BUYER_PAY":
                return _failed("40004", "ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            return {
                **ok,
                "out_trade_no": trade.out_trade_no,
                "qr_code": f"https://qr.alipay.com/{trade.trade_no[-12:]}",
            }
        trade = self._find(biz)
        if (
            method in ("alipay.trade.query", "alipay.trade.refund", "alipay.trade.fastpay.refund.query")
            and trade is None
        ):
            return _failed("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
        if method == "alipay.trade.query" and trade is not None:
            return {
                **ok,
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "159****5620",
                "trade_status": trade.status,
                "total_amount": yuan(trade.amount),
                "buyer_pay_amount": yuan(trade.amount) if trade.status != "WAIT_BUYER_PAY" else "0.00",
            }
        if method == "alipay.trade.refund" and trade is not None:
            request_no = str(biz.get("out_request_no") or trade.out_trade_no)
            amount = fen(str(biz.get("refund_amount", "")))
            if amount is None:
                return _failed("40002", "isv.invalid-parameter", "退款金额无效", code_msg="Invalid Arguments")
            if trade.status == "WAIT_BUYER_PAY":
                return _failed("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            moved = request_no not in trade.refunds  # out_request_no dedupes: a repeat moves nothing
            if moved:
                if sum(trade.refunds.values()) + amount > trade.amount:
                    return _failed("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
                trade.refunds[request_no] = amount
                if sum(trade.refunds.values()) == trade.amount:
                    trade.status = "TRADE_CLOSED"
            return {
                **ok,
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": "159****5620",
                "fund_change": "Y" if moved else "N",
                "refund_fee": yuan(sum(trade.refunds.values())),
            }
        if method == "alipay.trade.fastpay.refund.query" and trade is not None:
            request_no = str(biz.get("out_request_no") or trade.out_trade_no)
            if request_no not in trade.refunds:
                return ok  # Alipay's answer for a refund it does not have: no refund fields
            return {
                **ok,
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "out_request_no": request_no,
                "total_amount": yuan(trade.amount),
                "refund_amount": yuan(trade.refunds[request_no]),
                "refund_status": "REFUND_SUCCESS",
            }
        return _failed("40002", "isv.invalid-method", "不存在的方法名", code_msg="Invalid Arguments")

    def _find(self, biz: dict[str, Any]) -> Trade | None:
        """By trade_no when given (as Alipay prefers it), else by out_trade_no."""
        if biz.get("trade_no"):
            return next((t for t in self.trades.values() if t.trade_no == biz["trade_no"]), None)
        return self.trades.get(str(biz.get("out_trade_no", "")))

    def _signed(self, handler, name: str, response: dict[str, Any], bad: bool = False) -> None:
        # Written with spaces and literal non-ASCII, as Alipay does: the shop must verify these exact
        # characters, not its own re-serialisation.
        text = json.dumps(response, ensure_ascii=False)
        signature = sign(self.alipay_key, text + (" " if bad else ""))
        body = f'{{"{name}": {text}, "sign": "{signature}"}}'
        self._send(handler, 200, body.encode("utf-8"), "application/json;charset=utf-8")

    def _unsigned(self, handler, name: str, code: str, sub_code: str, sub_msg: str) -> None:
        response = {"code": code, "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}
        body = json.dumps({name: response}, ensure_ascii=False).encode("utf-8")
        self._send(handler, 200, body, "application/json;charset=utf-8")

    @staticmethod
    def _send(handler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def shop_order(order_id: str = "ord_01hx7c9k2m4n6p8q0r2s", total: int = 1999, currency: str = "CNY") -> Order:
    """An unpaid order as the shop holds it (what `start` is given), expiring 2026-03-01 04:15 UTC."""
    created = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    return Order(
        order_id=order_id,
        merchant_id="mer_1",
        product_id="prd_1",
        quantity=1,
        total=Money(amount=total, currency=currency),
        email="buyer@example.com",
        provider="alipay",
        status=Status.PENDING_PAYMENT,
        access_token_hash="h",
        created_at=created,
        expires_at=created + timedelta(minutes=15),
        slots=[],
        history=[],
    )


def _failed(code: str, sub_code: str, sub_msg: str, code_msg: str = "Business Failed") -> dict[str, Any]:
    return {"code": code, "msg": code_msg, "sub_code": sub_code, "sub_msg": sub_msg}


class Kit:
    name = "alipay"
    currency = "CNY"
    other_currency = "USD"
    app_id = APP_ID
    seller_id = SELLER_ID

    def __init__(self) -> None:
        self.app_key, self.alipay_key = new_key(), new_key()
        self.gateway = FakeAlipay(APP_ID, self.app_key.public_key(), self.alipay_key)

    def start(self) -> None:
        self.gateway.start()

    def stop(self) -> None:
        self.gateway.stop()

    def config(self) -> dict[str, Any] | None:
        config = {
            "app_id": APP_ID,
            "seller_id": SELLER_ID,
            "app_private_key": private_pem(self.app_key),
            "alipay_public_key": public_pem(self.alipay_key),
        }
        return {**config, "gateway_url": self.gateway.url} if self.gateway.url else config

    # ---- notifies
    def paid(self, order, amount=None, currency=None, order_id=None) -> Callback:
        total = order["total"]["amount"] if amount is None else amount
        out_trade_no = order_id or order["order_id"]
        if amount is None and currency is None and order_id is None:
            self.gateway.mark_paid(out_trade_no, total)  # the genuine payment: Alipay has the trade
        extra = {"trans_currency": currency} if currency else {}
        return self.callback(self.trade_notify(out_trade_no, "TRADE_SUCCESS", yuan(total), **extra))

    def refunded(self, order) -> Callback:
        """A full refund: the trade closes; out_biz_no is the shop's refund request if it sent one."""
        trade = self.gateway.trades.get(order["order_id"])
        request_no = next(iter(trade.refunds), None) if trade else None
        total = yuan(order["total"]["amount"])
        params = self.trade_notify(
            order["order_id"],
            "TRADE_CLOSED",
            total,
            refund_fee=total,
            gmt_refund=beijing() + ".320",
            gmt_close=beijing(),
            out_biz_no=request_no or f"dashboard_{stable('refund', order['order_id'])[:16]}",
        )
        return self.callback(params)

    def tampered(self, callback: Callback) -> Callback:
        params = dict(parse_qsl(callback.body.decode()))
        params["total_amount"] = "0.01" if params.get("total_amount") != "0.01" else "0.02"
        return Callback(urlencode(params).encode(), callback.headers)

    def wrong_key(self, order) -> Callback:
        # Signed with the app's own private key: a key the shop holds, but not Alipay's.
        return self.callback(
            self.trade_notify(order["order_id"], "TRADE_SUCCESS", yuan(order["total"]["amount"])),
            key=self.app_key,
        )

    def stale(self, order) -> Callback | None:
        params = self.trade_notify(order["order_id"], "TRADE_SUCCESS", yuan(order["total"]["amount"]))
        return self.callback({**params, "notify_time": beijing(time.time() - 27 * 3600)})

    def probe(self, order) -> Callback | None:
        return None  # Alipay sends no signature probes

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and body == b"success"

    def trade_notify(self, out_trade_no: str, status: str, total: str, **extra: str) -> dict[str, str]:
        """A trade_status_sync notify's parameters (unsigned), stable per trade, status and content."""
        params = {
            **event("alipay_trade_notify"),  # the common fields and a buyer
            "app_id": APP_ID,
            "auth_app_id": APP_ID,
            "seller_id": SELLER_ID,
            "notify_time": beijing(),
            "trade_no": trade_number(out_trade_no),
            "out_trade_no": out_trade_no,
            "trade_status": status,
            "total_amount": total,
            "receipt_amount": total,
            "buyer_pay_amount": total,
            "subject": f"Order {out_trade_no}",
            "gmt_create": beijing(time.time() - 60),
            "gmt_payment": beijing(time.time() - 30),
            # JSON inside a form value: signed as the raw text, so its quotes and brackets count
            "fund_bill_list": json.dumps([{"amount": total, "fundChannel": "ALIPAYACCOUNT"}]),
            **extra,
        }
        content = {
            k: v
            for k, v in params.items()
            if k not in ("notify_time", "gmt_create", "gmt_payment", "gmt_refund", "gmt_close")
        }
        params["notify_id"] = "2024" + stable("notify", sorted(content.items()))[:30]
        return params

    def callback(self, params: dict[str, str], key: rsa.RSAPrivateKey | None = None) -> Callback:
        """Sign as Alipay signs a notify (all parameters but sign and sign_type) and form-encode it."""
        signature = sign(key or self.alipay_key, signing_text(params, without=("sign", "sign_type")))
        body = urlencode({**params, "sign_type": "RSA2", "sign": signature}).encode()
        return Callback(body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
