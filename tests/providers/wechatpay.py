"""WeChat Pay API v3 as the shop's peer: a fake WeChat Pay server speaking the documented formats
(Native order, query by out_trade_no, refund, refund query), and notifies built as WeChat Pay sends
them (RSA-SHA256 signed with the platform key, resource AEAD_AES_256_GCM encrypted with the APIv3 key).

The fake checks every request's `Authorization` with the merchant's public key (401 SIGN_ERROR
otherwise), signs every answer with the platform key, keeps transactions and refunds in memory and
records each request. Tests script its failures: `fail_next`, `hang_next`, `bad_signature_next`,
`rewrite_next`. Its crypto is written here from the docs, apart from shared/providers/wechatpay.py,
and is itself checked against the wechatpayv3 SDK in tests/unit/test_wechatpay_provider.py.
"""

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.providers import Callback
from tests.providers.fake_server import Answer, SigningFakeServer
from tests.providers.keys import new_key, private_pem, public_pem, rsa_sign, rsa_verifies

SCHEME = "WECHATPAY2-SHA256-RSA2048"
CHINA = timezone(timedelta(hours=8))
MCHID = "1900009191"
APPID = "wxd678efh567hg6787"


# ---------------------------------------------------------------- signatures and resources


def wechatpay_headers(
    key: rsa.RSAPrivateKey, serial: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The `Wechatpay-*` headers of a notify or an answer: RSA-SHA256 over `timestamp\\nnonce\\nbody\\n`."""
    stamp, nonce = str(int(time.time()) if timestamp is None else timestamp), secrets.token_hex(16)
    return {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(key, f"{stamp}\n{nonce}\n".encode() + body + b"\n"),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SCHEME,
    }


def encrypt(
    apiv3_key: str, plaintext: dict[str, Any] | bytes, associated_data: str, original_type: str
) -> dict[str, str]:
    """A notify's `resource`: AEAD_AES_256_GCM with the APIv3 key, a 12-character nonce."""
    nonce = secrets.token_hex(6)
    data = plaintext if isinstance(plaintext, bytes) else json.dumps(plaintext, ensure_ascii=False).encode()
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), data, associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def decrypt(apiv3_key: str, resource: dict[str, str]) -> dict[str, Any]:
    opened = AESGCM(apiv3_key.encode()).decrypt(
        resource["nonce"].encode(),
        base64.b64decode(resource["ciphertext"]),
        resource["associated_data"].encode(),
    )
    return json.loads(opened)


AUTHORIZATION = re.compile(r'^WECHATPAY2-SHA256-RSA2048 ((?:\w+="[^"]*",?)+)$')


def authorization_error(
    header: str,
    method: str,
    target: str,
    body: bytes,
    key: rsa.RSAPublicKey,
    mchid: str,
    serial: str,
    now: int,
) -> str | None:
    """Why a request's `Authorization` is not the merchant's signature of it (None: it is)."""
    match = AUTHORIZATION.match(header or "")
    if match is None:
        return "Authorization is not WECHATPAY2-SHA256-RSA2048"
    parts = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
    if {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - parts.keys():
        return "Authorization lacks a field"
    if parts["mchid"] != mchid or parts["serial_no"] != serial:
        return "unknown merchant or certificate serial"
    if not parts["timestamp"].isdigit() or abs(now - int(parts["timestamp"])) > 300:
        return "timestamp outside 5 minutes"
    message = f"{method}\n{target}\n{parts['timestamp']}\n{parts['nonce_str']}\n".encode() + body + b"\n"
    if not rsa_verifies(key, message, parts["signature"]):
        return "signature does not verify"
    return None


def digits(key: str, count: int) -> str:
    """`count` decimal digits derived from `key`: WeChat Pay's ids are long numbers."""
    return str(int(hashlib.sha256(key.encode()).hexdigest(), 16))[:count].rjust(count, "0")


def china_time(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, CHINA).isoformat(timespec="seconds")


TRADE_STATES = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "REFUND": "转入退款"}  # trade_state_desc


def txid_of(out_trade_no: str, total: int, currency: str) -> str:
    """WeChat Pay's id of the payment of `total` for `out_trade_no`: the same for the same payment."""
    return "4200" + digits(f"{out_trade_no}|{total}|{currency}", 24)


def paid_fields(
    txid: str, success_time: str, total: int, currency: str, openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
) -> dict[str, Any]:
    """What a transaction (a query's answer, a notify's resource) says once it is paid by `openid`."""
    return {
        "transaction_id": txid,
        "trade_type": "NATIVE",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": success_time,
        "payer": {"openid": openid},
        "amount": {"total": total, "payer_total": total, "currency": currency, "payer_currency": currency},
    }


# ---------------------------------------------------------------- the fake server


@dataclass
class Recorded:
    method: str
    target: str  # the URL as sent: path and query, escapes kept (what the signature covers)
    path: str  # unescaped, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeWechatPay(SigningFakeServer[Recorded]):
    """A WeChat Pay API v3 server on 127.0.0.1 for one merchant."""

    label = "WeChat Pay"
    protocol_version = "HTTP/1.1"
    hang_seconds = 5.0  # beyond the client's read timeout

    def __init__(
        self,
        mchid: str,
        appid: str,
        merchant_serial: str,
        merchant_public: rsa.RSAPublicKey,
        platform_key: rsa.RSAPrivateKey,
        platform_serial: str,
    ) -> None:
        super().__init__()
        self.mchid, self.appid, self.merchant_serial = mchid, appid, merchant_serial
        self.merchant_public, self.platform_key, self.platform_serial = (
            merchant_public,
            platform_key,
            platform_serial,
        )
        self.trades: dict[str, dict[str, Any]] = {}  # by out_trade_no
        self.payments: dict[str, dict[str, Any]] = {}  # by transaction_id
        self.refunds: dict[str, dict[str, Any]] = {}  # by out_refund_no
        self.refund_outcome = "SUCCESS"  # the status a new refund gets (PROCESSING: settle it later)

    # ---- what a buyer or the merchant does at WeChat Pay
    def mark_paid(
        self,
        out_trade_no: str,
        total: int | None = None,
        currency: str = "CNY",
        transaction_id: str | None = None,
        openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    ) -> str:
        """The buyer (`openid`) paid `out_trade_no` (its own total unless `total` says otherwise); the
        transaction_id."""
        with self._lock:
            trade = self.trades.get(out_trade_no) or self._new_trade(out_trade_no, total or 1, currency)
            total = trade["amount"].get("total", 1) if total is None else total
            txid = transaction_id or txid_of(out_trade_no, total, currency)
            self.payments.setdefault(
                txid,
                {
                    "transaction_id": txid,
                    "out_trade_no": out_trade_no,
                    "total": total,
                    "currency": currency,
                    "success_time": china_time(),
                },
            )
            # The order's own payment settles it; a payment of another amount or currency (a test's
            # forgery) exists only to be refunded.
            if trade["trade_state"] == "NOTPAY" and trade["amount"] == {"total": total, "currency": currency}:
                trade.update(
                    trade_state="SUCCESS", transaction_id=txid, success_time=china_time(), openid=openid
                )
            return txid

    def settle_refund(self, out_refund_no: str, status: str) -> dict[str, Any]:
        """A refund WeChat Pay was processing ends (SUCCESS, CLOSED or ABNORMAL)."""
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund["status"] = status
            if status == "SUCCESS":
                refund["success_time"] = china_time()
            return dict(refund)

    def record_refund(
        self, payment: dict[str, Any], out_refund_no: str, refund: int, status: str
    ) -> dict[str, Any]:
        """A refund of `payment` (one of `payments`); the one already under `out_refund_no` if any."""
        with self._lock:
            return self._record_refund(payment, out_refund_no, refund, status)

    def asked(self, method: str, path_prefix: str) -> list[Recorded]:
        return self.recorded(lambda r: r.method == method and r.path.startswith(path_prefix))

    # ---- serving (tests/providers/fake_server.py serves, records and plays the scripts)
    def record(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Recorded:
        split = urlsplit(target)
        return Recorded(method, target, unquote(split.path), parse_qs(split.query), headers, body)

    def failure(self, request: Recorded, status: int) -> Answer:
        request.status = status
        return self._signed(status, {"code": "SYSTEM_ERROR", "message": "系统错误"})

    def answer(self, request: Recorded) -> Answer:
        error = authorization_error(
            request.headers.get("authorization", ""),
            request.method,
            request.target,
            request.body,
            self.merchant_public,
            self.mchid,
            self.merchant_serial,
            int(time.time()),
        )
        if error is not None:
            request.status = 401
            return 401, self._headers(), self._json({"code": "SIGN_ERROR", "message": f"签名错误: {error}"})
        with self._lock:
            try:
                status, answer = self._route(request)
            except ValueError:  # a body that is not JSON
                status, answer = 400, {"code": "PARAM_ERROR", "message": "请求体不是JSON"}
            if 200 <= status < 300:
                answer = self._rewritten(answer)
        request.status = status
        return self._signed(status, answer)

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8", "Request-ID": secrets.token_hex(16)}

    @staticmethod
    def _json(answer: dict[str, Any]) -> bytes:
        return json.dumps(answer, ensure_ascii=False).encode()

    def _signed(self, status: int, answer: dict[str, Any]) -> Answer:
        """The answer signed with the platform key (a signature of another body if scripted so)."""
        body = self._json(answer)
        headers = self._headers() | wechatpay_headers(self.platform_key, self.platform_serial, body)
        if self._signature_is_bad():
            headers["Wechatpay-Signature"] = rsa_sign(self.platform_key, b"another body")
        return status, headers, body

    def _route(self, request: Recorded) -> tuple[int, dict[str, Any]]:
        path, method = request.path, request.method
        if method == "POST" and path == "/v3/pay/transactions/native":
            return self._native(request.json)
        if method == "GET" and path.startswith("/v3/pay/transactions/out-trade-no/"):
            if request.query.get("mchid") != [self.mchid]:
                return 400, {"code": "PARAM_ERROR", "message": "mchid 与请求的商户号不符"}
            trade = self.trades.get(path.removeprefix("/v3/pay/transactions/out-trade-no/"))
            return (
                (200, self._trade_view(trade))
                if trade
                else (404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            )
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return self._refund(request.json)
        if method == "GET" and path.startswith("/v3/refund/domestic/refunds/"):
            refund = self.refunds.get(path.removeprefix("/v3/refund/domestic/refunds/"))
            return (
                (200, dict(refund))
                if refund
                else (404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
            )
        return 404, {"code": "NOT_FOUND", "message": "无此接口"}

    def _native(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            out_trade_no, amount = order["out_trade_no"], order["amount"]
            total, currency = amount["total"], amount.get("currency", "CNY")
            datetime.fromisoformat(order["time_expire"])
            missing = not (order["description"] and order["notify_url"])
        except (KeyError, TypeError, ValueError):
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        if missing or not re.fullmatch(r"[0-9A-Za-z_\-*]{6,32}", out_trade_no):
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        if (order.get("appid"), order.get("mchid")) != (self.appid, self.mchid):
            return 400, {"code": "APPID_MCHID_NOT_MATCH", "message": "AppID和mch_id不匹配"}
        if type(total) is not int or total < 1 or currency != "CNY":
            return 400, {"code": "PARAM_ERROR", "message": "订单金额或币种错误"}
        trade = self.trades.get(out_trade_no)
        if trade is not None:
            if trade["trade_state"] == "SUCCESS":
                return 400, {"code": "ORDERPAID", "message": "该订单已支付"}
            if trade["amount"]["total"] != total:
                return 400, {"code": "INVALID_REQUEST", "message": "201 商户订单号重复"}
        else:
            trade = self._new_trade(out_trade_no, total, currency)
        trade.update(
            description=order["description"], notify_url=order["notify_url"], time_expire=order["time_expire"]
        )
        return 200, {"code_url": trade["code_url"]}

    def _new_trade(self, out_trade_no: str, total: int, currency: str) -> dict[str, Any]:
        trade = {
            "out_trade_no": out_trade_no,
            "amount": {"total": total, "currency": currency},
            "trade_state": "NOTPAY",
            "code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)}",
        }
        self.trades[out_trade_no] = trade
        return trade

    def _trade_view(self, trade: dict[str, Any]) -> dict[str, Any]:
        view: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": trade["out_trade_no"],
            "trade_state": trade["trade_state"],
            "trade_state_desc": TRADE_STATES[trade["trade_state"]],
            "amount": {"payer_currency": "CNY"},  # an unpaid order has no paid amounts yet
        }
        if trade.get("transaction_id"):
            total, currency = trade["amount"]["total"], trade["amount"]["currency"]
            view |= paid_fields(
                trade["transaction_id"], trade["success_time"], total, currency, trade["openid"]
            )
        return view

    def _refund(self, asked: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            out_refund_no, amount = asked["out_refund_no"], asked["amount"]
            refund, total, currency = amount["refund"], amount["total"], amount["currency"]
        except (KeyError, TypeError):
            return 400, {"code": "PARAM_ERROR", "message": "参数错误"}
        if "transaction_id" in asked:
            payment = self.payments.get(asked["transaction_id"])
        else:
            txid = self.trades.get(asked.get("out_trade_no", ""), {}).get("transaction_id")
            payment = self.payments.get(txid or "")
        if payment is None:
            return 404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}
        if out_refund_no in self.refunds:  # the same out_refund_no is the same refund
            return 200, dict(self.refunds[out_refund_no])
        if currency != "CNY" or total != payment["total"] or type(refund) is not int or refund < 1:
            return 400, {"code": "PARAM_ERROR", "message": "订单金额或退款金额与之前请求不一致"}
        given = sum(
            r["amount"]["refund"]
            for r in self.refunds.values()
            if r["transaction_id"] == payment["transaction_id"] and r["status"] != "CLOSED"
        )
        if given + refund > payment["total"]:
            return 400, {"code": "INVALID_REQUEST", "message": "申请退款金额超过订单可退金额"}
        return 200, dict(self._record_refund(payment, out_refund_no, refund, self.refund_outcome))

    def _record_refund(
        self, payment: dict[str, Any], out_refund_no: str, refund: int, status: str
    ) -> dict[str, Any]:
        if out_refund_no in self.refunds:
            return self.refunds[out_refund_no]
        total = payment["total"]
        record = {
            "refund_id": "50" + digits(out_refund_no, 27),
            "out_refund_no": out_refund_no,
            "transaction_id": payment["transaction_id"],
            "out_trade_no": payment["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": china_time(),
            "status": status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": total,
                "refund": refund,
                "payer_total": total,
                "payer_refund": refund,
                "settlement_total": total,
                "settlement_refund": refund,
                "discount_refund": 0,
                "currency": payment["currency"],
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if status == "SUCCESS":
            record["success_time"] = china_time()
        self.refunds[out_refund_no] = record
        trade = self.trades.get(payment["out_trade_no"])
        if trade is not None and trade.get("transaction_id") == payment["transaction_id"]:
            trade["trade_state"] = "REFUND"
        return record


# ---------------------------------------------------------------- the kit


class Kit:
    """WeChat Pay for the conformance suite (tests/providers/__init__.py) and the WeChat Pay tests."""

    name = "wechatpay"
    currency = "CNY"
    other_currency = "USD"

    def __init__(self) -> None:
        # Once per kit: RSA-2048 key generation is the slow part of these tests.
        self.merchant_key, self.platform_key, self.imposter_key = new_key(), new_key(), new_key()
        self.apiv3_key = secrets.token_hex(16)  # 32 characters, as the merchant platform sets it
        self.mchid, self.appid = MCHID, APPID
        self.merchant_serial = secrets.token_hex(20).upper()
        self.platform_serial = "PUB_KEY_ID_01" + digits(self.apiv3_key, 30)
        self.fake: FakeWechatPay | None = None
        self.buyer = "o" + secrets.token_urlsafe(21)[:27]  # the buyer's openid for this appid (28 characters)

    def paid_by(self, via: str) -> tuple[str | None, str | None]:
        return f"wechatpay:{self.buyer}", None  # payer.openid in the notify and the query; no card

    def start(self) -> None:
        self.fake = FakeWechatPay(
            self.mchid,
            self.appid,
            self.merchant_serial,
            self.merchant_key.public_key(),
            self.platform_key,
            self.platform_serial,
        )
        self.fake.start()

    def stop(self) -> None:
        if self.fake is not None:
            self.fake.stop()

    def config(self) -> dict[str, Any]:
        return {
            "mchid": self.mchid,
            "appid": self.appid,
            "merchant_serial_no": self.merchant_serial,
            "merchant_private_key": private_pem(self.merchant_key),
            "apiv3_key": self.apiv3_key,
            "platform_public_keys": {self.platform_serial: public_pem(self.platform_key)},
            # Not started (unit tests): a loopback port nothing listens on, never the real API.
            "api_url": self.fake.url if self.fake is not None and self.fake.started else "http://127.0.0.1:9",
        }

    def sdk(self, notify_url: str, **options: Any) -> Any:
        """The wechatpayv3 SDK as this merchant's client (a Native-pay `WeChatPay`), in public-key
        mode (public_key + public_key_id): it then downloads no platform certificate."""
        from wechatpayv3 import WeChatPay, WeChatPayType  # an independent peer, for the tests only

        return WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=self.mchid,
            private_key=private_pem(self.merchant_key),
            cert_serial_no=self.merchant_serial,
            appid=self.appid,
            apiv3_key=self.apiv3_key,
            notify_url=notify_url,
            public_key=public_pem(self.platform_key),
            public_key_id=self.platform_serial,
            **options,
        )

    # ---- notifies
    def notify(
        self,
        event_type: str,
        resource: dict[str, Any] | bytes,
        *,
        event_id: str | None = None,
        original_type: str | None = None,
        associated_data: str | None = None,
        apiv3_key: str | None = None,
        summary: str = "支付成功",
        **signing: Any,
    ) -> Callback:
        """A notify of `event_type` whose resource is `resource` encrypted with the APIv3 key."""
        original = original_type or ("refund" if event_type.startswith("REFUND.") else "transaction")
        body = {
            "id": event_id or secrets.token_hex(16),
            "create_time": china_time(),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": encrypt(
                apiv3_key or self.apiv3_key,
                resource,
                original if associated_data is None else associated_data,
                original,
            ),
        }
        return self.signed(json.dumps(body, ensure_ascii=False).encode(), **signing)

    def signed(
        self,
        body: bytes,
        key: rsa.RSAPrivateKey | None = None,
        serial: str | None = None,
        timestamp: int | None = None,
    ) -> Callback:
        """`body` as WeChat Pay POSTs it: signed with the platform key unless told otherwise."""
        headers = wechatpay_headers(key or self.platform_key, serial or self.platform_serial, body, timestamp)
        return Callback(body=body, headers={"Content-Type": "application/json", **headers})

    def transaction(
        self,
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> dict[str, Any]:
        """The decrypted resource of `paid(order)`; the same transaction_id however often it is built."""
        out_trade_no = order_id or order["order_id"]
        total = order["total"]["amount"] if amount is None else amount
        currency = currency or order["total"]["currency"]
        return {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": out_trade_no,
            "trade_state": "SUCCESS",
            "trade_state_desc": TRADE_STATES["SUCCESS"],
            **paid_fields(txid_of(out_trade_no, total, currency), china_time(), total, currency, self.buyer),
        }

    def pay_without_notify(self, order: dict[str, Any], **changes: Any) -> str:
        """The buyer pays at the fake and the notify is lost: `query()` finds it. The transaction_id."""
        assert self.fake is not None, "start() the kit first"
        trade = self.transaction(order, **changes)
        return self.fake.mark_paid(
            trade["out_trade_no"],
            trade["amount"]["total"],
            trade["amount"]["currency"],
            trade["transaction_id"],
            trade["payer"]["openid"],
        )

    def paid(
        self,
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> Callback:
        if self.fake is not None:  # WeChat Pay notifies a payment it took: query() and refunds see it
            self.pay_without_notify(order, amount=amount, currency=currency, order_id=order_id)
        return self.paid_notify(order, amount=amount, currency=currency, order_id=order_id)

    def paid_notify(self, order: dict[str, Any], **signing: Any) -> Callback:
        """`paid(order)`'s notify without a payment at the fake behind it; `signing` as `notify()` takes
        (and `amount` / `currency` / `order_id` as `transaction()`)."""
        changes = {k: signing.pop(k) for k in ("amount", "currency", "order_id") if k in signing}
        trade = self.transaction(order, **changes)
        event_id = "EV-" + digits(f"paid|{trade['transaction_id']}", 20)
        return self.notify("TRANSACTION.SUCCESS", trade, event_id=event_id, **signing)

    def refunded(self, order: dict[str, Any]) -> Callback:
        trade = self.transaction(order)
        total = trade["amount"]["total"]
        payment = {
            "transaction_id": trade["transaction_id"],
            "out_trade_no": trade["out_trade_no"],
            "total": total,
            "currency": trade["amount"]["currency"],
        }
        # The shop's own refund of this payment if it asked for one, else one made in the merchant platform.
        refund: dict[str, Any] | None = None
        if self.fake is not None:
            ours = [r for r in self.fake.refunds.values() if r["transaction_id"] == payment["transaction_id"]]
            if ours:
                refund = self.fake.settle_refund(ours[0]["out_refund_no"], "SUCCESS")
            else:
                self.fake.mark_paid(
                    payment["out_trade_no"], total, payment["currency"], payment["transaction_id"]
                )
                refund = self.fake.record_refund(
                    self.fake.payments[payment["transaction_id"]],
                    "5" + digits(trade["transaction_id"], 20),
                    total,
                    "SUCCESS",
                )
        out_refund_no = refund["out_refund_no"] if refund else "5" + digits(trade["transaction_id"], 20)
        resource = {
            "mchid": self.mchid,
            "out_trade_no": trade["out_trade_no"],
            "transaction_id": trade["transaction_id"],
            "out_refund_no": out_refund_no,
            "refund_id": refund["refund_id"] if refund else "50" + digits(out_refund_no, 27),
            "refund_status": "SUCCESS",
            "success_time": china_time(),
            "user_received_account": "支付用户零钱",
            "amount": {"total": total, "refund": total, "payer_total": total, "payer_refund": total},
        }
        event_id = "EV-" + digits(f"refund|{out_refund_no}", 20)
        return self.notify("REFUND.SUCCESS", resource, event_id=event_id, summary="退款成功")

    def tampered(self, callback: Callback) -> Callback:
        """The amount inside the resource raised by one fen after signing (re-encrypted, so only the
        RSA signature can tell)."""
        body = json.loads(callback.body)
        resource = decrypt(self.apiv3_key, body["resource"])
        amount = resource["amount"]
        amount["refund" if "refund" in amount else "total"] += 1
        body["resource"] = encrypt(
            self.apiv3_key, resource, body["resource"]["associated_data"], body["resource"]["original_type"]
        )
        return Callback(body=json.dumps(body, ensure_ascii=False).encode(), headers=dict(callback.headers))

    def wrong_key(self, order: dict[str, Any]) -> Callback:
        """Signed with another RSA key under the platform key's serial."""
        return self.paid_notify(order, key=self.imposter_key)

    def stale(self, order: dict[str, Any]) -> Callback:
        return self.paid_notify(order, timestamp=int(time.time()) - 6 * 60)

    def probe(self, order: dict[str, Any]) -> Callback:
        """WeChat Pay's signature probe: a real-looking notify whose signature is `WECHATPAY/SIGNTEST/…`."""
        callback = self.paid_notify(order)
        headers = dict(callback.headers)
        headers["Wechatpay-Signature"] = (
            "WECHATPAY/SIGNTEST/" + base64.b64encode(secrets.token_bytes(192)).decode()
        )
        return Callback(body=callback.body, headers=headers)

    def acknowledged(self, status: int, body: bytes) -> bool:
        # 200 or 204 is success; WeChat Pay reads no body then (it needs one only with a 4xx/5xx).
        return status in (200, 204)

    def lost(self, order: dict[str, Any]) -> None:
        self.pay_without_notify(order)

    def refunded_amounts(self, order: dict[str, Any]) -> list[int]:
        assert self.fake is not None, "start() the kit first"
        with self.fake._lock:
            refunds = [r for r in self.fake.refunds.values() if r["out_trade_no"] == order["order_id"]]
        return [r["amount"]["refund"] for r in refunds if r["status"] in ("SUCCESS", "PROCESSING")]
