"""Alipay (open platform gateway, RSA2) through the port: page pay or precreate (QR), the async
notify, and the signed API (trade query, refund, refund query).

Every request is signed with the app's private key over its sorted parameters; every notify and
every answer is trusted only when it verifies with Alipay's public key, and is bound to this app and
seller and to the order asked about. Domestic Alipay settles in CNY only: amounts are yuan text,
parsed exactly (shared/money.py), and a notify or answer naming another currency is refused.
"""

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import urllib3
from cryptography.exceptions import InvalidSignature as BadRsaSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from shared.errors import BadInput, InvalidSignature, PaymentMismatch
from shared.money import Money, from_major, to_major
from shared.orders import Order
from shared.payments import EventType, PaymentEvent, payer_of
from shared.providers import (
    REPLIES,
    PaymentStart,
    ProviderRefused,
    ProviderUnavailable,
    RefundRequest,
    RefundState,
    Reply,
    UnexpectedAnswer,
)
from shared.providers.config import AlipayConfig
from shared.providers.http import call, new_pool

# Alipay's clock is Beijing time. China has kept UTC+8 without DST since 1991, so a fixed offset
# gives the same times as zoneinfo without needing tzdata in the Lambda image.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Alipay re-sends an unacknowledged notify 8 times within 25 hours (4m, 10m, 10m, 1h, 2h, 6h, 15h;
# "异步通知说明", docs.open.alipay.com/270/105902); one hour more covers its clock and queues.
NOTIFY_MAX_AGE = 26 * 3600  # seconds
NOTIFY_MAX_AHEAD = 300  # seconds: a notify_time this far in the future is a wrong clock or a forgery
MAX_NOTIFY_BYTES = 64 * 1024
MAX_NOTIFY_FIELDS = 200
PAID = {"TRADE_SUCCESS", "TRADE_FINISHED"}
# A notify about a refund carries these (a full refund closes the trade, a partial one leaves it paid).
REFUND_FIELDS = ("refund_fee", "gmt_refund", "out_biz_no")
# Fields a cross-border trade may price in; a domestic one carries none. Anything but CNY is refused.
CURRENCY_FIELDS = ("trans_currency", "currency")
# The buyer's Alipay account: `buyer_id` (notify; `buyer_user_id` in a query's answer) is the
# account's user id (2088…, one per account); an app in OpenID mode gets `buyer_open_id` (one per
# account and app) instead. The first one present names the payer (docs/payments.md "Payer").
NOTIFY_BUYER_FIELDS = ("buyer_id", "buyer_open_id")
QUERY_BUYER_FIELDS = ("buyer_user_id", "buyer_open_id")
_SAFE = re.compile(r"[^0-9A-Za-z_.\-]")
_WS = re.compile(r"[ \t\n\r]*")


def content_to_sign(params: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """Alipay's signing content: `k=v` sorted by key, joined by `&`, unescaped, without empty values."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude and params[k] != "")


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    """RSA2: SHA256withRSA (PKCS#1 v1.5) over the UTF-8 content, base64."""
    return base64.b64encode(key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(key: rsa.RSAPublicKey, content: str, sign: str) -> bool:
    """True if `sign` (base64) is the RSA2 signature of `content`; False for any malformed sign."""
    try:
        key.verify(
            base64.b64decode(sign, validate=True), content.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (BadRsaSignature, ValueError):  # binascii.Error is a ValueError
        return False
    return True


def response_members(text: str) -> dict[str, tuple[str, Any]]:
    """The top-level members of a JSON object as {key: (raw text of the value, value)}.

    Alipay signs the response object exactly as it is written in the body ("同步返回验签",
    docs.open.alipay.com/200/106120), so its text is cut out of the body, never serialised again.
    A key given twice is refused (which one was signed?)."""
    decoder = json.JSONDecoder()
    members: dict[str, tuple[str, Any]] = {}
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        raise ValueError("not an object")
    i = _skip(text, i + 1)
    while text[i : i + 1] != "}":
        key, i = decoder.raw_decode(text, i)
        i = _skip(text, i)
        if not isinstance(key, str) or key in members or text[i : i + 1] != ":":
            raise ValueError("bad or repeated member")
        start = _skip(text, i + 1)
        value, i = decoder.raw_decode(text, start)
        members[key] = (text[start:i], value)
        i = _skip(text, i)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
        elif text[i : i + 1] != "}":
            raise ValueError("bad separator")
    if _skip(text, i + 1) != len(text):
        raise ValueError("trailing data")
    return members


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def _amount(text: Any, what: str, error: type[Exception]) -> Money:
    """Yuan text to fen, exactly: '19.99' -> 1999; '1e3', '-1', '19.999', full-width digits are refused."""
    try:
        if not isinstance(text, str) or len(text) > 20:
            raise ValueError
        return from_major(text, "CNY")
    except ValueError:  # pydantic's ValidationError (over MAX_AMOUNT) is a ValueError too
        raise error(f"alipay {what} is not an exact yuan amount") from None


def _text(value: Any, limit: int = 64) -> str | None:
    """A string field of a verified message, or None if absent; anything else is not Alipay's shape."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("field is not a short string")
    return value


class AlipayProvider:
    """Alipay's open platform (a PaymentProvider)."""

    name = "alipay"

    def __init__(
        self, config: AlipayConfig, notify_url: str, http: urllib3.PoolManager | None = None
    ) -> None:
        private = load_pem_private_key(config.app_private_key.encode(), password=None)
        public = load_pem_public_key(config.alipay_public_key.encode())
        if not isinstance(private, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("alipay keys must be RSA (RSA2)")
        self._config, self._key, self._alipay_key = config, private, public
        self._notify_url = notify_url
        self._http = http or new_pool()

    def __repr__(self) -> str:  # never a key
        return f"AlipayProvider(app_id={self._config.app_id!r}, gateway={self._config.gateway_url!r})"

    def start(self, order: Order, return_url: str) -> PaymentStart:
        if order.total.currency != "CNY":
            raise BadInput("alipay takes CNY only", code="currency_not_supported")
        expires = order.expires_at if order.expires_at.tzinfo else order.expires_at.replace(tzinfo=UTC)
        biz = {
            "out_trade_no": order.order_id,
            "total_amount": to_major(order.total),
            "subject": f"Order {order.order_id}",
            "time_expire": expires.astimezone(SHANGHAI).strftime(TIME_FORMAT),
        }
        if self._config.checkout == "page":  # a signed redirect, no call: the trade starts at the cashier
            biz["product_code"] = "FAST_INSTANT_TRADE_PAY"
            params = self._signed(
                "alipay.trade.page.pay", biz, notify_url=self._notify_url, return_url=return_url
            )
            joiner = "&" if "?" in self._config.gateway_url else "?"
            return PaymentStart(kind="redirect", url=f"{self._config.gateway_url}{joiner}{urlencode(params)}")
        answer = self._api("alipay.trade.precreate", biz, notify_url=self._notify_url)
        try:
            qr_code, out_trade_no = _text(answer.get("qr_code"), 1024), _text(answer.get("out_trade_no"))
        except ValueError:
            raise UnexpectedAnswer("alipay precreate answer has malformed fields") from None
        if qr_code is None or out_trade_no != order.order_id:
            raise UnexpectedAnswer("alipay precreate answer has no QR code for this order")
        return PaymentStart(kind="qr", url=qr_code)

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        params = _form(headers, body)
        sign = params.pop("sign", None)
        if not sign:
            raise InvalidSignature("alipay notify has no sign")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise InvalidSignature("alipay notify is not signed with RSA2")
        if not rsa2_verify(self._alipay_key, content_to_sign(params, exclude=("sign", "sign_type")), sign):
            raise InvalidSignature("alipay notify signature does not verify")
        try:  # everything below is signed
            sent = datetime.strptime(params.get("notify_time", ""), TIME_FORMAT).replace(tzinfo=SHANGHAI)
        except ValueError:
            raise InvalidSignature("alipay notify has no valid notify_time") from None
        age = now - int(sent.timestamp())
        if age > NOTIFY_MAX_AGE or -age > NOTIFY_MAX_AHEAD:
            raise InvalidSignature("alipay notify_time is outside the window Alipay retries in")
        if params.get("app_id") != self._config.app_id:
            raise BadInput("alipay notify is for another app", code="wrong_app_id")
        if params.get("seller_id") != self._config.seller_id:
            raise BadInput("alipay notify is for another seller account", code="wrong_seller_id")
        if params.get("notify_type", "trade_status_sync") != "trade_status_sync":
            return []  # a notify about something else than a trade's status: nothing to do
        if any(params.get(field, "CNY") != "CNY" for field in CURRENCY_FIELDS):
            raise BadInput(
                "alipay notify is priced in another currency than CNY", code="currency_not_supported"
            )
        return self._events(params)

    def acknowledgement(self) -> Reply:
        return REPLIES["alipay"]

    def query(self, order_id: str) -> list[PaymentEvent]:
        answer = self._api("alipay.trade.query", {"out_trade_no": order_id}, absent_ok=True)
        if answer.get("code") != "10000":
            return []  # the trade does not exist: the buyer never reached Alipay's cashier
        try:
            trade_no, status = _text(answer.get("trade_no")), _text(answer.get("trade_status"), 32)
            out_trade_no = _text(answer.get("out_trade_no"))
            currency = _text(answer.get("trans_currency"), 8)
        except ValueError:
            raise UnexpectedAnswer("alipay query answer has malformed fields") from None
        if out_trade_no != order_id:
            raise PaymentMismatch("alipay answered about another order")
        if status not in PAID:
            return []  # waiting for the buyer, or closed (unpaid, or refunded in full)
        if trade_no is None or currency not in (None, "CNY"):
            raise UnexpectedAnswer("alipay query answer has no trade number or is not in CNY")
        amount = _amount(answer.get("total_amount"), "total_amount", UnexpectedAnswer)
        payer = _payer(answer, QUERY_BUYER_FIELDS)
        return [
            self._event(f"query:{trade_no}", "payment.succeeded", order_id, trade_no, amount, payer=payer)
        ]

    def refund(self, request: RefundRequest) -> RefundState:
        """`alipay.trade.refund`, idempotent by `out_request_no`; a repeat answers fund_change N."""
        biz = {
            "out_trade_no": request.order_id,
            "trade_no": request.payment_id,
            "refund_amount": to_major(request.amount),
            "out_request_no": request.refund_id,
        }
        if request.reason:
            biz["refund_reason"] = request.reason[:256]
        answer = self._api("alipay.trade.refund", biz)
        if answer.get("out_trade_no") not in (None, request.order_id):
            raise UnexpectedAnswer("alipay answered about another trade")
        # Y: this call moved the money. N: a repeat (already refunded) or still in progress;
        # refund_state tells them apart.
        return RefundState.SUCCEEDED if answer.get("fund_change") == "Y" else RefundState.PENDING

    def refund_state(self, request: RefundRequest) -> RefundState | None:
        """`alipay.trade.fastpay.refund.query`: REFUND_SUCCESS, or None for a refund Alipay does not have.

        Alipay documents a missing refund_status as "not received or failed": sending the refund
        again with the same out_request_no is then safe, so that is None too."""
        biz = {
            "out_trade_no": request.order_id,
            "trade_no": request.payment_id,
            "out_request_no": request.refund_id,
        }
        answer = self._api("alipay.trade.fastpay.refund.query", biz, absent_ok=True)
        if answer.get("code") != "10000" or answer.get("refund_status") != "REFUND_SUCCESS":
            return None
        if answer.get("out_request_no") != request.refund_id or answer.get("out_trade_no") not in (
            None,
            request.order_id,
        ):
            raise UnexpectedAnswer("alipay answered about another refund")
        return RefundState.SUCCEEDED

    def _events(self, params: dict[str, str]) -> list[PaymentEvent]:
        """A verified trade_status_sync notify as events."""
        try:
            notify_id, status = _text(params.get("notify_id"), 128), _text(params.get("trade_status"), 32)
            order_id, trade_no = _text(params.get("out_trade_no")), _text(params.get("trade_no"))
            refund_id = _text(params.get("out_biz_no"))
        except ValueError:
            raise BadInput("alipay notify has an oversized field") from None
        if not (notify_id and status and order_id and trade_no):
            raise BadInput("alipay notify lacks notify_id, trade_status, out_trade_no or trade_no")
        if any(field in params for field in REFUND_FIELDS):
            if status not in PAID | {"TRADE_CLOSED"}:
                raise BadInput("alipay refund notify for a trade that was never paid")
            # refund_fee is the trade's total refunded so far, so the last of several partial
            # refunds reports the whole payment.
            amount = _amount(params.get("refund_fee"), "refund_fee", BadInput)
            return [self._event(notify_id, "refund.succeeded", order_id, trade_no, amount, refund_id)]
        if status not in PAID | {"TRADE_CLOSED"}:
            return []  # WAIT_BUYER_PAY (not paid yet), or a status the shop does not act on
        amount = _amount(params.get("total_amount"), "total_amount", BadInput)
        kind: EventType = "payment.succeeded" if status in PAID else "payment.failed"  # closed unpaid
        payer = _payer(params, NOTIFY_BUYER_FIELDS)
        return [self._event(notify_id, kind, order_id, trade_no, amount, payer=payer)]

    def _event(
        self,
        event_id: str,
        kind: EventType,
        order_id: str,
        trade_no: str,
        amount: Money,
        refund: str | None = None,
        payer: str | None = None,
    ) -> PaymentEvent:
        ids = {"event_id": event_id, "order_id": order_id, "payment_id": trade_no}
        return PaymentEvent(
            provider=self.name, type=kind, amount=amount, refund_id=refund, payer=payer, **ids
        )

    def _signed(self, method: str, biz: dict[str, str], **extra: str) -> dict[str, str]:
        """The common parameters, the business ones as biz_content, and their RSA2 sign."""
        params = {
            "app_id": self._config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(SHANGHAI).strftime(TIME_FORMAT),
            "version": "1.0",
            "biz_content": json.dumps(
                {key: value for key, value in biz.items() if value}, ensure_ascii=False, separators=(",", ":")
            ),
            **{key: value for key, value in extra.items() if value},
        }
        params["sign"] = rsa2_sign(self._key, content_to_sign(params))
        return params

    def _api(self, method: str, biz: dict[str, str], absent_ok: bool = False, **extra: str) -> dict[str, Any]:
        """POST one signed call; the verified response object, if Alipay did what was asked.

        `absent_ok`: a trade that does not exist (ACQ.TRADE_NOT_EXIST) is an answer, not an error."""
        body = urlencode(self._signed(method, biz, **extra)).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
            "Accept": "application/json",
        }
        answer = call(self._http, "alipay", "POST", self._config.gateway_url, headers, body)
        try:
            members = response_members(answer.body.decode())
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise UnexpectedAnswer("alipay answer is not JSON") from None
        raw, response = members.get(method.replace(".", "_") + "_response") or members.get(
            "error_response", ("", None)
        )
        if not isinstance(response, dict):
            raise UnexpectedAnswer(f"alipay answer has no {method} response")
        sign = members.get("sign", ("", None))[1]
        code, sub_code = (
            str(response.get("code", ""))[:8],
            _SAFE.sub("", str(response.get("sub_code", "")))[:64],
        )
        if not sign and code != "10000":
            # Alipay leaves some gateway errors (a bad request signature, an unknown app) unsigned:
            # trusted only as a refusal, never as an answer about a trade.
            raise ProviderRefused(f"alipay refused {method}: {code} {sub_code} (unsigned)")
        if not isinstance(sign, str) or not rsa2_verify(self._alipay_key, raw, sign):
            raise UnexpectedAnswer("alipay answer signature does not verify")
        if code == "10000" or (absent_ok and code == "40004" and sub_code == "ACQ.TRADE_NOT_EXIST"):
            return response
        if code == "20000" or sub_code.endswith("SYSTEM_ERROR"):  # Alipay says: retry the same request
            raise ProviderUnavailable(f"alipay {method} failed: {code} {sub_code}")
        if code.startswith("4"):  # 40001 missing, 40002 invalid, 40004 business failed, 40006 no permission
            raise ProviderRefused(f"alipay refused {method}: {code} {sub_code}")
        raise UnexpectedAnswer(f"alipay {method} answer has no known code")


def _payer(message: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """`alipay:<id>` of the first of `fields` the (verified) message carries; Alipay names no card."""
    return next((payer_of("alipay", message[f]) for f in fields if message.get(f)), None)


def _form(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """A notify's form parameters (UTF-8, each once, empty values dropped: they are not signed)."""
    if len(body) > MAX_NOTIFY_BYTES:
        raise BadInput("alipay notify is too large")
    declared = headers.get("content-type", "").lower().partition("charset=")[2].split(";")[0].strip(' "')
    try:
        if declared not in ("", "utf-8", "utf8"):
            raise ValueError
        pairs = parse_qsl(
            body.decode(),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_NOTIFY_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError, a field without '=', too many fields
        raise BadInput("alipay notify is not a UTF-8 form", code="malformed_notify") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise BadInput(f"alipay notify repeats {_SAFE.sub('', key)[:32]}", code="malformed_notify")
        params[key] = value
    if params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise BadInput("alipay notify is not in UTF-8", code="malformed_notify")
    return {key: value for key, value in params.items() if value != ""}
