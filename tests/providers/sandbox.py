"""The sandbox's side for the conformance suite: its callbacks, signed as the local sandbox signs them.

The sandbox is configured by settings (SANDBOX_SECRET), so this kit is built from the runtime rather
than started by conftest."""

import hashlib
import json
import secrets
import time
from typing import Any

from shared.providers.signatures import sandbox_signature
from tests.providers import Callback


def _stable(kind: str, order_id: str) -> str:
    return hashlib.sha256(f"{kind}:{order_id}".encode()).hexdigest()[:20]


class Kit:
    name = "sandbox"
    currency = "CNY"
    other_currency = "USD"

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.buyer, self.card_country = f"buyer_{secrets.token_hex(12)}", "DE"

    def paid_by(self, via) -> tuple[str | None, str | None]:
        return f"sandbox:{self.buyer}", self.card_country  # the callback and the query alike

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def config(self) -> dict[str, Any] | None:
        return None

    def paid(self, order, amount=None, currency=None, order_id=None) -> Callback:
        data = {
            "order_id": order_id or order["order_id"],
            "payment_id": f"pay_{_stable('payment', order['order_id'])}",
            "amount": order["total"]["amount"] if amount is None else amount,
            "currency": currency or order["total"]["currency"],
            "payer": self.buyer,
            "card_country": self.card_country,
        }
        with self.runtime.sandbox._lock:  # the sandbox took this payment (so it can be refunded)
            self.runtime.sandbox.payments[data["payment_id"]] = dict(data)
        return self._signed(
            {"id": f"evt_{_stable('paid', order['order_id'])}", "type": "payment.succeeded", "data": data}
        )

    def refunded(self, order) -> Callback:
        data = {
            "order_id": order["order_id"],
            "payment_id": f"pay_{_stable('payment', order['order_id'])}",
            "amount": order["total"]["amount"],
            "currency": order["total"]["currency"],
        }
        return self._signed(
            {"id": f"evt_{_stable('refund', order['order_id'])}", "type": "refund.succeeded", "data": data}
        )

    def tampered(self, callback: Callback) -> Callback:
        body = json.loads(callback.body)
        body["data"]["amount"] += 1
        return Callback(json.dumps(body).encode(), callback.headers)

    def wrong_key(self, order) -> Callback:
        callback = self.paid(order)
        return self._signed(json.loads(callback.body), secret="whsec_not_the_sandbox_secret_at_all")

    def stale(self, order) -> Callback | None:
        return self._signed(json.loads(self.paid(order).body), at=int(time.time()) - 600)

    def probe(self, order) -> Callback | None:
        return None

    def acknowledged(self, status: int, body: bytes) -> bool:
        return status == 200 and json.loads(body).get("received") is True

    def lost(self, order) -> None:
        self.paid(order)  # the sandbox took the payment; its callback is never sent

    def refunded_amounts(self, order) -> list[int]:
        payment_id = f"pay_{_stable('payment', order['order_id'])}"
        return [refund["amount"] for refund in self.runtime.sandbox.refunds_for(payment_id)]

    def _signed(self, event: dict, secret: str | None = None, at: int | None = None) -> Callback:
        raw = json.dumps(event).encode()
        header = sandbox_signature(secret or self.runtime.sandbox_secret, raw, at or int(time.time()))
        return Callback(raw, {"Content-Type": "application/json", "Sandbox-Signature": header})
