"""WeChat Pay API v3 (Native pay) through the port: a QR `code_url` per order, notifies verified with
the WeChat Pay public key and decrypted with the APIv3 key, and signed queries and refunds whose
answers are verified before they are trusted.

The shop signs each request `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,signature=…,
timestamp=…,serial_no=…` with the merchant key over `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`.
WeChat Pay signs every answer and notify over `TIMESTAMP\\nNONCE\\nBODY\\n` with the key that
`Wechatpay-Serial` names (a `PUB_KEY_ID_…` public key or a platform certificate's serial).
"""

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta, timezone
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import urllib3
from cryptography.exceptions import InvalidSignature as RsaMismatch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import BaseModel, Field

from shared.errors import BadInput, InvalidSignature, PaymentMismatch
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order
from shared.payments import PaymentEvent, payer_of
from shared.providers import (
    REPLIES,
    PaymentStart,
    ProviderRefused,
    RefundRequest,
    RefundState,
    Reply,
    UnexpectedAnswer,
)
from shared.providers.config import WechatPayConfig
from shared.providers.http import call, new_pool, parse_body
from shared.providers.signatures import check_window

SCHEME = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TOLERANCE = 300  # seconds, as WeChat Pay's own SDKs allow
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"  # WeChat Pay's probes check that a bad signature is refused
MAX_NOTIFY_BYTES = 64 * 1024  # a real notify is about 1 KiB
CHINA = timezone(timedelta(hours=8))  # time_expire is given in Beijing time, as the docs show
REFUND_STATES = {
    "SUCCESS": RefundState.SUCCEEDED,
    "PROCESSING": RefundState.PENDING,
    "ABNORMAL": RefundState.FAILED,  # the buyer's card refused it: the merchant must act
    "CLOSED": RefundState.FAILED,
}
Id = Annotated[str, Field(min_length=1, max_length=64)]


class _Resource(BaseModel):
    algorithm: Literal["AEAD_AES_256_GCM"]
    ciphertext: str = Field(min_length=1, max_length=MAX_NOTIFY_BYTES)
    associated_data: str = Field(default="", max_length=64)
    nonce: str = Field(min_length=8, max_length=64)
    original_type: str = Field(default="", max_length=32)


class _Notify(BaseModel):
    id: Id
    create_time: str = Field(max_length=64)
    event_type: str = Field(min_length=1, max_length=64)
    resource_type: Literal["encrypt-resource"]
    resource: _Resource
    summary: str = Field(default="", max_length=256)


class _Amount(BaseModel):
    total: int | None = Field(default=None, ge=0, le=MAX_AMOUNT, strict=True)  # fen; absent while unpaid
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")


class _Transaction(BaseModel):
    appid: Id
    mchid: Id
    out_trade_no: Id
    transaction_id: Id | None = None
    trade_state: str = Field(min_length=1, max_length=32)
    amount: _Amount = _Amount()
    # {"openid": …}: the buyer, one id per WeChat user and app (appid). Read leniently: a payer
    # missing or malformed names no payer and never refuses the payment. WeChat Pay names no card.
    payer: Any = None


class _RefundAmount(BaseModel):
    refund: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")  # the refund notify has none: CNY


class _RefundNotice(BaseModel):
    mchid: Id
    out_trade_no: Id
    transaction_id: Id
    out_refund_no: Id
    refund_status: Literal["SUCCESS", "CLOSED", "ABNORMAL"]
    amount: _RefundAmount


class _Refund(BaseModel):
    out_refund_no: Id
    transaction_id: Id
    status: Literal["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"]


class _Native(BaseModel):
    code_url: str = Field(min_length=1, max_length=512, pattern=r"^weixin://")


class _Error(BaseModel):
    code: str = Field(default="", max_length=64)


class WechatPayProvider:
    """WeChat Pay API v3, Native pay (a PaymentProvider)."""

    name = "wechatpay"

    def __init__(
        self, config: WechatPayConfig, notify_url: str, http: urllib3.PoolManager | None = None
    ) -> None:
        key = load_pem_private_key(config.merchant_private_key.encode(), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the WeChat Pay merchant key is not an RSA key")
        self._key = key
        self._platform_keys: dict[str, RSAPublicKey] = {}
        for serial, pem in config.platform_public_keys.items():
            public = load_pem_public_key(pem.encode())
            if not isinstance(public, RSAPublicKey):
                raise ValueError(f"WeChat Pay public key {serial} is not an RSA key")
            self._platform_keys[serial] = public
        self._config, self._notify_url = config, notify_url
        self._api_url = config.api_url.rstrip("/")
        self._base_path = urlsplit(self._api_url).path  # signed as part of the URL the request goes to
        self._http = http or new_pool()

    def __repr__(self) -> str:  # never a key
        return f"WechatPayProvider(mchid={self._config.mchid!r}, api_url={self._api_url!r})"

    def start(self, order: Order, return_url: str) -> PaymentStart:
        """Native order → the `code_url` the buyer scans (a QR code has no return URL to go back to)."""
        if order.total.currency != "CNY":
            raise BadInput("WeChat Pay takes payments in CNY only", code="currency_not_supported")
        payload = {
            "appid": self._config.appid,
            "mchid": self._config.mchid,
            "description": f"Order {order.order_id}",
            "out_trade_no": order.order_id,
            "time_expire": order.expires_at.astimezone(CHINA).isoformat(timespec="seconds"),
            "notify_url": self._notify_url,
            "amount": {"total": order.total.amount, "currency": "CNY"},
        }
        _, body = self._signed_call("POST", "/v3/pay/transactions/native", payload)
        return PaymentStart(kind="qr", url=parse_body(_Native, body, "wechatpay", UnexpectedAnswer).code_url)

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        if len(body) > MAX_NOTIFY_BYTES:
            raise BadInput("WeChat Pay notify is too large")
        self._verify(headers, body, now)
        notify = parse_body(_Notify, body, "wechatpay", BadInput)
        kind, _, outcome = notify.event_type.partition(".")
        if notify.event_type == "TRANSACTION.SUCCESS":
            trade = parse_body(_Transaction, self._decrypt(notify.resource), "wechatpay", BadInput)
            if trade.appid != self._config.appid or trade.mchid != self._config.mchid:
                raise BadInput("WeChat Pay notify is for another app or merchant", code="wrong_account")
            if trade.trade_state != "SUCCESS":
                return []
            return [self._payment(trade, notify.id, BadInput)]
        if kind == "REFUND" and outcome in ("SUCCESS", "ABNORMAL", "CLOSED"):
            refund = parse_body(_RefundNotice, self._decrypt(notify.resource), "wechatpay", BadInput)
            if refund.mchid != self._config.mchid:
                raise BadInput("WeChat Pay notify is for another merchant", code="wrong_account")
            if refund.refund_status != outcome:
                raise BadInput("WeChat Pay refund notify contradicts itself")
            return [
                PaymentEvent(
                    provider=self.name,
                    event_id=notify.id,
                    type="refund.succeeded" if outcome == "SUCCESS" else "refund.failed",
                    order_id=refund.out_trade_no,
                    payment_id=refund.transaction_id,
                    amount=Money(amount=refund.amount.refund, currency=refund.amount.currency),
                    refund_id=refund.out_refund_no,
                )
            ]
        return []

    def acknowledgement(self) -> Reply:
        return REPLIES["wechatpay"]

    def query(self, order_id: str) -> list[PaymentEvent]:
        mchid = quote(self._config.mchid, safe="")
        path = f"/v3/pay/transactions/out-trade-no/{quote(order_id, safe='')}?mchid={mchid}"
        status, body = self._signed_call("GET", path, accept=(200, 404))
        if status == 404:
            _not_found(body, "ORDER_NOT_EXIST")
            return []
        trade = parse_body(_Transaction, body, "wechatpay", UnexpectedAnswer)
        if trade.out_trade_no != order_id:
            raise PaymentMismatch("the provider answered about another order")
        if trade.appid != self._config.appid or trade.mchid != self._config.mchid:
            raise UnexpectedAnswer("wechatpay answered about another app or merchant")
        if trade.trade_state != "SUCCESS":
            return []
        return [self._payment(trade, f"query:{trade.transaction_id}", UnexpectedAnswer)]

    def refund(self, request: RefundRequest) -> RefundState:
        """Refund the exact payment taken (its transaction_id); `out_refund_no` makes a retry the same refund."""
        payload: dict[str, Any] = {"out_refund_no": request.refund_id, "notify_url": self._notify_url}
        if request.payment_id:
            payload["transaction_id"] = request.payment_id
        else:
            payload["out_trade_no"] = request.order_id
        if request.reason:
            payload["reason"] = request.reason[:80]
        payload["amount"] = {
            "refund": request.amount.amount,
            "total": request.paid.amount,
            "currency": request.amount.currency,
        }
        _, body = self._signed_call("POST", "/v3/refund/domestic/refunds", payload)
        return self._refund_state(body, request)

    def refund_state(self, request: RefundRequest) -> RefundState | None:
        path = f"/v3/refund/domestic/refunds/{quote(request.refund_id, safe='')}"
        status, body = self._signed_call("GET", path, accept=(200, 404))
        if status == 404:
            _not_found(body, "RESOURCE_NOT_EXISTS")
            return None
        return self._refund_state(body, request)

    def _refund_state(self, body: bytes, request: RefundRequest) -> RefundState:
        refund = parse_body(_Refund, body, "wechatpay", UnexpectedAnswer)
        if refund.out_refund_no != request.refund_id:
            raise UnexpectedAnswer("wechatpay answered about another refund")
        if request.payment_id and refund.transaction_id != request.payment_id:
            raise UnexpectedAnswer("wechatpay answered about a refund of another payment")
        return REFUND_STATES[refund.status]

    def _payment(self, trade: _Transaction, event_id: str, error: type[Exception]) -> PaymentEvent:
        if trade.transaction_id is None or trade.amount.total is None:
            raise error("a successful WeChat Pay transaction without its id or amount")
        return PaymentEvent(
            provider=self.name,
            event_id=event_id,
            type="payment.succeeded",
            order_id=trade.out_trade_no,
            payment_id=trade.transaction_id,
            amount=Money(amount=trade.amount.total, currency=trade.amount.currency),
            payer=payer_of(self.name, trade.payer.get("openid") if isinstance(trade.payer, dict) else None),
        )

    def _verify(self, headers: Mapping[str, str], body: bytes, now: int) -> None:
        """InvalidSignature unless WeChat Pay signed `body` (a notify or an answer) within the window."""
        signature = headers.get("wechatpay-signature") or ""
        if not signature or signature.startswith(PROBE_PREFIX):
            raise InvalidSignature("missing or probe WeChat Pay signature")
        if headers.get("wechatpay-signature-type", SCHEME) != SCHEME:
            raise InvalidSignature("unsupported WeChat Pay signature type")
        stamp, nonce = headers.get("wechatpay-timestamp") or "", headers.get("wechatpay-nonce") or ""
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not 0 < len(nonce) <= 64:
            raise InvalidSignature("WeChat Pay signature has no valid timestamp or nonce")
        check_window(int(stamp), now, SIGNATURE_TOLERANCE)
        key = self._platform_keys.get(headers.get("wechatpay-serial") or "")
        if key is None:
            raise InvalidSignature("signed with a WeChat Pay key this shop does not know")
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, f"{stamp}\n{nonce}\n".encode() + body + b"\n", PKCS1v15(), SHA256())
        except (binascii.Error, ValueError, RsaMismatch):
            raise InvalidSignature("WeChat Pay signature does not match") from None

    def _decrypt(self, resource: _Resource) -> bytes:
        try:
            ciphertext = base64.b64decode(resource.ciphertext, validate=True)
            aead = AESGCM(self._config.apiv3_key.encode())
            return aead.decrypt(resource.nonce.encode(), ciphertext, resource.associated_data.encode())
        except InvalidTag:  # tampered, or not encrypted with our APIv3 key
            raise InvalidSignature("WeChat Pay notify resource does not decrypt with the APIv3 key") from None
        except (binascii.Error, ValueError):
            raise BadInput("WeChat Pay notify resource is malformed") from None

    def _signed_call(
        self, method: str, path: str, payload: dict[str, Any] | None = None, accept: tuple[int, ...] = (200,)
    ) -> tuple[int, bytes]:
        """Send a signed request; the status and body of an answer WeChat Pay signed."""
        body = (
            b""
            if payload is None
            else json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        )
        stamp, nonce = str(int(time.time())), secrets.token_hex(16).upper()
        message = f"{method}\n{self._base_path}{path}\n{stamp}\n{nonce}\n".encode() + body + b"\n"
        signature = base64.b64encode(self._key.sign(message, PKCS1v15(), SHA256())).decode()
        config = self._config
        headers = {
            "Authorization": f'{SCHEME} mchid="{config.mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{stamp}",serial_no="{config.merchant_serial_no}"',
            "Accept": "application/json",
            "User-Agent": "miaofa",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        answer = call(self._http, "wechatpay", method, self._api_url + path, headers, body or None, accept)
        try:
            self._verify(answer.headers, answer.body, int(time.time()))
        except InvalidSignature as error:
            raise UnexpectedAnswer(f"wechatpay answer is not signed by WeChat Pay: {error.message}") from None
        return answer.status, answer.body


def _not_found(body: bytes, expected: str) -> None:
    """A signed 404 means "never heard of it" only with its documented code."""
    code = parse_body(_Error, body, "wechatpay", UnexpectedAnswer).code
    if code != expected:
        raise ProviderRefused(f"wechatpay answered 404 {code[:64]}")
