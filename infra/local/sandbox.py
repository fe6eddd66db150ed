"""The sandbox payment provider: a fake peer with its own pay page that, like a real provider,
sends a signed callback to the shop's webhook over HTTP and retries it until it gets a 2xx."""

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from html import escape
from urllib.parse import parse_qsl, urlsplit

from shared.payments import sandbox_signature

PREFIX = "/_sandbox"
RETRY_DELAYS = (0.0, 0.5, 2.0, 5.0)


class SandboxProvider:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url, self.secret = base_url, secret
        self.payments: dict[str, dict] = {}  # payment_id -> what was paid
        self._lock = threading.Lock()

    @property
    def pay_url(self) -> str:
        return f"{self.base_url}{PREFIX}/pay"

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == f"{PREFIX}/pay" and method == "GET":
            return 200, {"content-type": "text/html; charset=utf-8"}, _pay_page(query).encode()
        if path == f"{PREFIX}/pay" and method == "POST":
            try:
                form = dict(parse_qsl(body.decode()))
                amount = int(form["amount"])
                order_id, currency = form["order_id"], form["currency"]
            except (KeyError, ValueError):  # UnicodeDecodeError is a ValueError
                return 400, {"content-type": "text/plain"}, b"order_id, amount and currency are required"
            delivered = self.pay(order_id, amount, currency)
            return_url = form.get("return_url", "")
            if self._is_ours(return_url):
                return 303, {"location": return_url}, b""
            return (
                200,
                {"content-type": "text/plain"},
                b"paid" if delivered else b"paid; callback not accepted",
            )
        return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'

    def _is_ours(self, url: str) -> bool:
        """Only redirect back to the shop itself: same scheme and host, no control characters."""
        target, ours = urlsplit(url), urlsplit(self.base_url)
        return (target.scheme, target.netloc) == (ours.scheme, ours.netloc) and url.isprintable()

    def pay(self, order_id: str, amount: int, currency: str, retry: bool = True) -> bool:
        """Take a payment and send its callback; True once the shop answered 2xx."""
        payment_id = f"pay_{secrets.token_hex(8)}"
        data = {"order_id": order_id, "payment_id": payment_id, "amount": amount, "currency": currency}
        event = {
            "id": f"evt_{secrets.token_hex(10)}",
            "type": "payment.succeeded",
            "data": data,
        }
        with self._lock:
            self.payments[payment_id] = data
        body = json.dumps(event).encode()
        for delay in RETRY_DELAYS if retry else (0.0,):
            time.sleep(delay)
            if self.send(body) // 100 == 2:
                return True
        return False

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


def _pay_page(query: dict[str, str]) -> str:
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{escape(query.get(name, ""))}">'
        for name in ("order_id", "amount", "currency", "return_url")
    )
    amount = escape(query.get("amount", "?"))
    currency = escape(query.get("currency", ""))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sandbox pay</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1"></head>'
        '<body style="font-family:system-ui;max-width:30rem;margin:2rem auto">'
        "<h1>Sandbox payment</h1><p>Test mode: no real money moves.</p>"
        f"<p>Order <code>{escape(query.get('order_id', ''))}</code>: "
        f'<strong id="amount">{amount}</strong> {currency} (minor units)</p>'
        f'<form method="post" action="{PREFIX}/pay">{fields}'
        '<button id="pay" type="submit" style="font-size:1.2rem;padding:.5rem 2rem">Pay</button></form>'
        "</body></html>"
    )
