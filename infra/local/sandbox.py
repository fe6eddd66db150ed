"""The sandbox payment provider: a fake peer with its own pay page that, like a real provider,
sends a signed callback to the shop's webhook over HTTP and retries it until it gets a 2xx, and
answers signed queries about the payments it took for an order (as Alipay's trade query does)."""

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from html import escape
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import ValidationError

from functions.storefront import i18n
from shared.errors import InvalidSignature
from shared.money import Money
from shared.providers.sandbox import SIGNATURE_TOLERANCE, signed_query
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature

PREFIX = "/_sandbox"
RETRY_DELAYS = (0.0, 0.5, 2.0, 5.0)


class SandboxProvider:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url, self.secret = base_url, secret
        self.payments: dict[str, dict] = {}  # payment_id -> what was paid
        self.refunds: dict[str, dict] = {}  # refund_id -> what was given back
        self.refund_outcome = "succeeded"  # what a new refund becomes ("failed": as a closed card does)
        self._lock = threading.Lock()

    @property
    def pay_url(self) -> str:
        return f"{self.base_url}{PREFIX}/pay"

    @property
    def api_url(self) -> str:
        """Where the shop asks about a payment (reconciliation's lost-callback recovery)."""
        return f"{self.base_url}{PREFIX}/api/payments"

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == f"{PREFIX}/api/payments":
            return self._answer_query(method, path, query, headers)
        if path == f"{PREFIX}/api/refunds":
            return self._answer_refund(method, path, query, headers, body)
        if path == f"{PREFIX}/disputes" and method == "POST":
            form = dict(parse_qsl(body.decode(errors="replace")))
            if not form.get("order_id"):
                return 400, {"content-type": "text/plain"}, b"order_id is required"
            status = self.dispute(form["order_id"], reason=form.get("reason") or "fraudulent")
            if status == 404:
                return 404, {"content-type": "text/plain"}, b"the sandbox took no payment for that order"
            answer = b"disputed" if status // 100 == 2 else b"disputed; callback not accepted"
            return 200, {"content-type": "text/plain"}, answer
        if path == f"{PREFIX}/pay" and method == "GET":
            return 200, {"content-type": "text/html; charset=utf-8"}, _pay_page(query, headers).encode()
        if path == f"{PREFIX}/pay" and method == "POST":
            try:
                form = dict(parse_qsl(body.decode()))
                amount = int(form["amount"])
                order_id, currency = form["order_id"], form["currency"]
            except (KeyError, ValueError):  # UnicodeDecodeError is a ValueError
                return 400, {"content-type": "text/plain"}, b"order_id, amount and currency are required"
            # "Pay, lose the callback" shows reconciliation asking the provider (within ~2 minutes).
            # `payer` / `card_country` (optional form fields) script who paid, as `pay()` takes them.
            delivered = self.pay(
                order_id,
                amount,
                currency,
                callback=form.get("callback") != "lost",
                payer=form.get("payer") or None,
                card_country=form.get("card_country") or None,
            )
            return_url = form.get("return_url", "")
            if self._is_ours(return_url):
                return 303, {"location": return_url}, b""
            return (
                200,
                {"content-type": "text/plain"},
                b"paid" if delivered else b"paid; callback not accepted",
            )
        return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'

    def _answer_query(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """`GET /_sandbox/api/payments?order_id=ID`, signed: every payment taken for that order, signed."""
        if method != "GET":
            return _error(405, "method_not_allowed", "only GET")
        order_id = query.get("order_id", "")
        if not order_id:
            return _error(400, "bad_request", "order_id is required")
        try:
            verify_sandbox_signature(
                self.secret,
                headers.get("sandbox-signature"),
                signed_query(path, order_id),
                now=int(time.time()),
                tolerance=SIGNATURE_TOLERANCE,
            )
        except InvalidSignature as error:
            return _error(401, "invalid_signature", error.message)
        payments = [
            {
                "payment_id": payment_id,
                "amount": data["amount"],
                "currency": data["currency"],
                **{key: data[key] for key in ("payer", "card_country") if data.get(key)},
                # a payment given back in full is no longer one the shop may deliver for
                "status": "refunded"
                if sum(r["amount"] for r in self.refunds_for(payment_id)) >= data["amount"]
                else "succeeded",
            }
            for payment_id, data in self.payments_for(order_id).items()
        ]
        return self._signed({"order_id": order_id, "payments": payments})

    def _answer_refund(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """`POST …/refunds` (signed JSON: refund_id, payment_id, amount, currency) refunds once per
        refund_id; `GET …/refunds?refund_id=ID` (signed like a payment query) tells what became of it."""
        signed = (
            body
            if method == "POST"
            else f"GET {path}?refund_id={quote(query.get('refund_id', ''), safe='')}".encode()
        )
        try:
            verify_sandbox_signature(
                self.secret,
                headers.get("sandbox-signature"),
                signed,
                now=int(time.time()),
                tolerance=SIGNATURE_TOLERANCE,
            )
        except InvalidSignature as error:
            return _error(401, "invalid_signature", error.message)
        if method == "GET":
            with self._lock:
                refund = self.refunds.get(query.get("refund_id", ""))
            return self._signed(refund) if refund else _error(404, "not_found", "no such refund")
        if method != "POST":
            return _error(405, "method_not_allowed", "only GET and POST")
        try:
            asked = json.loads(body)
            refund_id, payment_id, amount = (
                str(asked["refund_id"]),
                str(asked["payment_id"]),
                int(asked["amount"]),
            )
        except (KeyError, TypeError, ValueError):
            return _error(400, "bad_request", "refund_id, payment_id and amount are required")
        with self._lock:
            paid = self.payments.get(payment_id)
            if paid is None:
                return _error(404, "not_found", "no such payment")
            given = sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_id"] == payment_id and r["status"] != "failed"
            )
            if refund_id not in self.refunds:
                if amount <= 0 or given + amount > paid["amount"]:
                    return _error(400, "bad_request", "refund is larger than what is left of the payment")
                self.refunds[refund_id] = {
                    "refund_id": refund_id,
                    "payment_id": payment_id,
                    "amount": amount,
                    "status": self.refund_outcome,
                }
            refund = dict(self.refunds[refund_id])
        return self._signed(refund)

    def _signed(self, answer: dict) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(answer).encode()
        signature = sandbox_signature(self.secret, body, int(time.time()))
        return 200, {"content-type": "application/json", "sandbox-signature": signature}, body

    def refunds_for(self, payment_id: str) -> list[dict]:
        """The refunds that gave money back for `payment_id` (failed ones gave nothing)."""
        with self._lock:
            return [
                dict(r)
                for r in self.refunds.values()
                if r["payment_id"] == payment_id and r["status"] != "failed"
            ]

    def payments_for(self, order_id: str) -> dict[str, dict]:
        """payment_id -> what was paid, for every payment taken for `order_id`."""
        with self._lock:
            return {pid: dict(data) for pid, data in self.payments.items() if data["order_id"] == order_id}

    def _is_ours(self, url: str) -> bool:
        """Only redirect back to the shop itself: same scheme and host, no control characters."""
        target, ours = urlsplit(url), urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (ours.scheme, ours.netloc) and url.isprintable()

    def take(self, data: dict) -> None:
        """Record a payment (`order_id`, `payment_id`, `amount`, `currency`) whose callback the caller
        sends itself: it can then be refunded, as one taken by `pay`."""
        with self._lock:
            self.payments[str(data["payment_id"])] = dict(data)

    def pay(
        self,
        order_id: str,
        amount: int,
        currency: str,
        retry: bool = True,
        callback: bool = True,
        payer: str | None = None,
        card_country: str | None = None,
    ) -> bool:
        """Take a payment and send its callback; True once the shop answered 2xx.

        `callback=False` takes and records the payment but never calls back: a lost callback, which
        only a query to the payments API (reconciliation) can find. `payer` (the buyer's account at
        the sandbox) and `card_country` (two letters) go into the callback's `data` and the query's
        answer when given, so tests can script buyers (docs/API.md).
        """
        payment_id = f"pay_{secrets.token_hex(8)}"
        data: dict = {"order_id": order_id, "payment_id": payment_id, "amount": amount, "currency": currency}
        data |= {key: value for key, value in (("payer", payer), ("card_country", card_country)) if value}
        event = {
            "id": f"evt_{secrets.token_hex(10)}",
            "type": "payment.succeeded",
            "data": data,
        }
        self.take(data)
        if not callback:
            return False
        body = json.dumps(event).encode()
        for delay in RETRY_DELAYS if retry else (0.0,):
            time.sleep(delay)
            if self.send(body) // 100 == 2:
                return True
        return False

    def dispute(
        self, order_id: str, reason: str = "fraudulent", dispute_id: str | None = None, retry: bool = True
    ) -> int:
        """The buyer disputes the order's payment (a chargeback): its signed `payment.disputed` callback
        (`data`: the payment, `dispute_id`, `reason`, and the payer if the payment named one) is sent,
        again until a 2xx as a payment's is. Returns the shop's last status; 404 if the sandbox took no
        payment for the order. The same `dispute_id` sent again is the same dispute."""
        payments = self.payments_for(order_id)
        if not payments:
            return 404
        payment_id, paid = next(iter(payments.items()))  # the first: the one the order was paid with
        data = {
            "order_id": order_id,
            "payment_id": payment_id,
            "amount": paid["amount"],
            "currency": paid["currency"],
            "dispute_id": dispute_id or f"dp_{secrets.token_hex(8)}",
            "reason": reason,
            **({"payer": paid["payer"]} if paid.get("payer") else {}),
        }
        body = json.dumps({"id": f"evt_{secrets.token_hex(10)}", "type": "payment.disputed", "data": data})
        status = 0
        for delay in RETRY_DELAYS if retry else (0.0,):
            time.sleep(delay)
            status = self.send(body.encode())
            if status // 100 == 2:
                break
        return status

    def send(self, body: bytes, signature: str | None = None) -> int:
        """POST a callback body to the shop's webhook; returns the HTTP status."""
        header = signature or sandbox_signature(self.secret, body, int(time.time()))
        request = urllib.request.Request(
            f"{self.base_url}/webhooks/sandbox",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Sandbox-Signature": header},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, {"content-type": "application/json"}, body


# The pay page speaks the shop page's language: the same choice (`?lang=`, the pages' language cookie,
# which this page shares locally, then Accept-Language) as functions/storefront/i18n.py makes.
PAY_TEXTS = {
    "en": {
        "title": "Sandbox payment",
        "badge": "SANDBOX",
        "test": "Test mode: no real money moves.",
        "order": "Order",
        "amount": "Amount",
        "pay": "Pay",
        "lost": "Pay, but lose the callback",
        "lost_note": "The second button takes the payment without telling the shop; reconciliation asks the "
        "provider about unpaid orders after 2 minutes and delivers.",
    },
    "zh-CN": {
        "title": "沙箱支付",
        "badge": "沙箱环境",
        "test": "测试模式：不会产生真实扣款。",
        "order": "订单",
        "amount": "金额",
        "pay": "付款",
        "lost": "付款，但丢失回调",
        "lost_note": "第二个按钮付款但不通知商店；对账会在 2 分钟后向支付方查询未付款订单并发货。",
    },
}


# A provider's own page, so it looks like one (no Content-Security-Policy: the local runtime's, not the shop's).
_PAY_STYLE = (
    "*{box-sizing:border-box}body{margin:0;min-height:100vh;background:#eef1f5;color:#14171c;overflow-wrap:anywhere;"
    'font:16px/1.55 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei","WenQuanYi Zen Hei",sans-serif}'
    ".sheet{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border:1px solid #d8dde5;"
    "border-radius:.75rem;box-shadow:0 4px 16px rgb(16 24 40/.08)}"
    ".test{display:inline-block;margin:0 0 .75rem;padding:.1rem .6rem;border-radius:999px;background:#fff1d6;"
    "color:#744500;font-size:.8rem;font-weight:700;letter-spacing:.04em}"
    "h1{font-size:1.4rem;margin:0 0 .25rem}.muted{color:#525a67;margin:0 0 1rem}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:.5rem 1rem;align-items:baseline;margin:0 0 1.25rem;"
    "padding:1rem;background:#f6f7f9;border-radius:.5rem}dt{color:#525a67}dd{margin:0}"
    "code{font:.9rem ui-monospace,Menlo,Consolas,monospace}#amount{font-size:1.75rem;color:#b3261e;line-height:1.2}"
    "button{display:block;width:100%;font:inherit;font-weight:600;min-height:2.75rem;border-radius:.5rem;cursor:pointer;"
    "padding:.6rem 1rem;margin:0 0 .6rem}#pay{font-size:1.15rem;min-height:3.1rem;background:#1d4ed8;color:#fff;"
    "border:1px solid #1d4ed8}#pay:hover{background:#1e3a8a}#pay-lost{background:#fff;color:#1e3a8a;"
    "border:1px solid #8a929f}#pay-lost:hover{background:#e7eeff}"
    ":focus-visible{outline:3px solid #1d4ed8;outline-offset:2px}.note{font-size:.85rem;color:#525a67;margin:.5rem 0 0}"
    "@media (max-width:30rem){.sheet{margin:0;min-height:100vh;border:0;border-radius:0}}"
)


def _pay_page(query: dict[str, str], headers: dict[str, str]) -> str:
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except CookieError:
        cookie.clear()
    chosen = cookie.get(i18n.COOKIE)
    lang = i18n.choose(query.get("lang"), chosen.value if chosen else None, headers.get("accept-language"))
    t = PAY_TEXTS[lang]
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{escape(query.get(name, ""))}">'
        for name in ("order_id", "amount", "currency", "return_url")
    )
    try:
        amount = i18n.money(
            Money(amount=int(query.get("amount", "")), currency=query.get("currency", "")), lang
        )
    except (ValueError, ValidationError):  # not a payment anyone could make: shown as given
        amount = f"{query.get('amount', '?')} {query.get('currency', '')}"
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{t["title"]}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_PAY_STYLE}</style></head>'
        f'<body><main class="sheet"><p class="test">{t["badge"]}</p><h1>{t["title"]}</h1><p class="muted">{t["test"]}</p>'
        f"<dl><dt>{t['order']}</dt><dd><code>{escape(query.get('order_id', ''))}</code></dd>"
        f'<dt>{t["amount"]}</dt><dd><strong id="amount">{escape(amount)}</strong></dd></dl>'
        f'<form method="post" action="{PREFIX}/pay">{fields}'
        f'<button id="pay" type="submit">{t["pay"]}</button>'
        f'<button id="pay-lost" type="submit" name="callback" value="lost">{t["lost"]}</button>'
        f'</form><p class="note">{t["lost_note"]}</p></main>'
        "</body></html>"
    )
