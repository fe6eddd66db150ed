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

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.providers import Callback
from tests.providers.fake_server import Answer, SigningFakeServer
from tests.providers.keys import new_key, private_pem, public_pem, rsa_sign, rsa_verifies
from tests.support import event

BEIJING = timezone(timedelta(hours=8))
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
GATEWAY_PATH = "/gateway.do"


def signing_text(params: dict[str, str], without: tuple[str, ...]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in without and v)


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
    buyer_id: str = ""  # the paying account (2088…), once paid


@dataclass(frozen=True)
class Request:
    http_method: str
    params: dict[str, str]
    biz: dict[str, Any]
    signed: bool  # the request's sign verified with the app's public key


class FakeAlipay(SigningFakeServer[Request]):
    """Alipay's open-platform gateway on 127.0.0.1: trades and refunds in memory, scriptable faults."""

    label = "Alipay"
    hang_seconds = 3.0  # beyond the client's read timeout
    garbage_type = "text/html;charset=utf-8"

    def __init__(self, app_id: str, app_public: rsa.RSAPublicKey, alipay_key: rsa.RSAPrivateKey) -> None:
        super().__init__()
        self.app_id, self.app_public, self.alipay_key = app_id, app_public, alipay_key
        self.trades: dict[str, Trade] = {}

    @property
    def url(self) -> str:
        return super().url + GATEWAY_PATH

    def mark_paid(self, out_trade_no: str, amount: int, buyer_id: str = "") -> Trade:
        """The buyer (`buyer_id`, the account's 2088… user id) paid, whether or not its notify
        reaches the shop."""
        with self._lock:
            trade = self._trade(out_trade_no, amount)
            if trade.status == "WAIT_BUYER_PAY":
                trade.status, trade.buyer_id = "TRADE_SUCCESS", buyer_id
            return trade

    def calls(self, method: str) -> list[Request]:
        return self.recorded(lambda r: r.params.get("method") == method)

    def _trade(self, out_trade_no: str, amount: int) -> Trade:
        if out_trade_no not in self.trades:
            self.trades[out_trade_no] = Trade(out_trade_no, trade_number(out_trade_no), amount)
        return self.trades[out_trade_no]

    # ---- the gateway (tests/providers/fake_server.py serves, records and plays the scripts)
    def record(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        form = body.decode("utf-8", "replace") if method == "POST" else ""
        pairs = parse_qsl(urlsplit(target).query, keep_blank_values=True) + parse_qsl(
            form, keep_blank_values=True
        )
        params = dict(pairs)
        signed = len(params) == len(pairs) and rsa_verifies(
            self.app_public,
            signing_text(params, without=("sign",)).encode(),
            params.get("sign", ""),
            strict=False,
        )
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            biz = {}
        return Request(method, params, biz if isinstance(biz, dict) else {}, signed)

    def failure(self, request: Request, status: int) -> Answer:
        return status, {"Content-Type": "text/plain"}, b"Service Unavailable"

    def answer(self, request: Request) -> Answer:
        params, biz = request.params, request.biz
        method = params.get("method", "")
        name = method.replace(".", "_") + "_response"
        if params.get("app_id") != self.app_id:
            return self._unsigned(name, "40002", "isv.invalid-app-id", "无效的AppID参数")
        if (
            not request.signed
            or params.get("sign_type") != "RSA2"
            or params.get("charset", "").lower() != "utf-8"
        ):
            return self._unsigned(name, "40002", "isv.invalid-signature", "验签出错")
        if method == "alipay.trade.page.pay":  # the buyer's browser arrives at the cashier
            with self._lock:
                amount = fen(str(biz.get("total_amount", "")))
                if amount is not None and biz.get("out_trade_no"):
                    self._trade(str(biz["out_trade_no"]), amount)
            return 200, {"Content-Type": "text/html;charset=utf-8"}, "<html>支付宝收银台</html>".encode()
        with self._lock:
            answer = self._rewritten(self._answer(method, biz))
        return self._signed(name, answer, bad=self._signature_is_bad())

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
                **({"buyer_user_id": trade.buyer_id} if trade.buyer_id else {}),
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

    def _signed(self, name: str, response: dict[str, Any], bad: bool = False) -> Answer:
        # Written with spaces and literal non-ASCII, as Alipay does: the shop must verify these exact
        # characters, not its own re-serialisation.
        text = json.dumps(response, ensure_ascii=False)
        signature = rsa_sign(self.alipay_key, (text + (" " if bad else "")).encode())
        body = f'{{"{name}": {text}, "sign": "{signature}"}}'
        return 200, {"Content-Type": "application/json;charset=utf-8"}, body.encode("utf-8")

    @staticmethod
    def _unsigned(name: str, code: str, sub_code: str, sub_msg: str) -> Answer:
        response = {"code": code, "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}
        body = json.dumps({name: response}, ensure_ascii=False).encode("utf-8")
        return 200, {"Content-Type": "application/json;charset=utf-8"}, body


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
        self.buyer = "2088" + "".join(secrets.choice("0123456789") for _ in range(12))  # buyer_id

    def paid_by(self, via: str) -> tuple[str | None, str | None]:
        return f"alipay:{self.buyer}", None  # notify buyer_id, query buyer_user_id; Alipay names no card

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
        return {**config, "gateway_url": self.gateway.url} if self.gateway.started else config

    # ---- notifies
    def paid(self, order, amount=None, currency=None, order_id=None) -> Callback:
        total = order["total"]["amount"] if amount is None else amount
        out_trade_no = order_id or order["order_id"]
        if amount is None and currency is None and order_id is None:
            self.gateway.mark_paid(
                out_trade_no, total, self.buyer
            )  # the genuine payment: Alipay has the trade
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

    def lost(self, order) -> None:
        self.gateway.mark_paid(
            order["order_id"], order["total"]["amount"], self.buyer
        )  # and no notify is sent

    def refunded_amounts(self, order) -> list[int]:
        trade = self.gateway.trades.get(order["order_id"])
        return list(trade.refunds.values()) if trade else []

    def trade_notify(self, out_trade_no: str, status: str, total: str, **extra: str) -> dict[str, str]:
        """A trade_status_sync notify's parameters (unsigned), stable per trade, status and content."""
        params = {
            **event("alipay_trade_notify"),  # the common fields and a buyer
            "buyer_id": self.buyer,
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
        text = signing_text(params, without=("sign", "sign_type"))
        signature = rsa_sign(key or self.alipay_key, text.encode())
        body = urlencode({**params, "sign_type": "RSA2", "sign": signature}).encode()
        return Callback(body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
