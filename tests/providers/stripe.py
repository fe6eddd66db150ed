"""The Stripe kit: a fake Stripe API on 127.0.0.1 and callbacks signed as Stripe signs them.

The fake speaks Stripe's documented formats for what the shop calls (Checkout Sessions,
PaymentIntent search, Refunds): form-encoded requests with bracketed keys, `Bearer` secret keys,
`Idempotency-Key` replays, list and search envelopes, and `{"error": {...}}` bodies. It keeps its
objects in memory, records every request, and lets a test script failures, hangs and garbage.
"""

import hashlib
import hmac
import html
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.providers import Callback
from tests.providers.fake_server import Answer, FakeServer

API_VERSION = "2025-03-31.basil"
TOLERANCE = 300  # seconds, the window Stripe's libraries (and the shop) accept
STRIPE_SCALE = {"ISK": 100}  # ISK is two-decimal in Stripe's API (docs.stripe.com/currencies)
REFUND_STATUSES = ("pending", "requires_action", "succeeded", "failed", "canceled")
_CLAUSE = re.compile(
    r"(?:metadata\['(?P<key>[^'\\]+)'\]|(?P<field>status|currency)):'(?P<value>(?:[^'\\]|\\.)*)'"
)


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    """`Stripe-Signature` as Stripe computes it (docs.stripe.com/webhooks, "verify manually")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_amount(amount: int, currency: str) -> int:
    return amount * STRIPE_SCALE.get(currency.upper(), 1)


def _id(prefix: str, *parts: object) -> str:
    """A deterministic Stripe-looking id: the same parts give the same object."""
    return prefix + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    form: dict[str, Any]  # the form body, brackets decoded into dicts and lists


class StripeError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param

    def body(self) -> dict[str, Any]:
        error = {"type": self.kind, "message": str(self)}
        error.update({k: v for k, v in (("code", self.code), ("param", self.param)) if v})
        return {"error": error}


def decode_form(body: bytes) -> dict[str, Any]:
    """`a[b][0][c]=v` (Stripe's form encoding) -> {"a": {"b": [{"c": "v"}]}}."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)):
        head, _, rest = name.partition("[")
        keys = [head, *re.findall(r"([^\[\]]*)\]", "[" + rest)] if rest else [head]
        node = root
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise StripeError(
                    400, "invalid_request_error", f"Invalid parameter: {name}", "parameter_invalid"
                )
        node[keys[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def _integer(name: str, value: Any, low: int = 0) -> int:
    if not isinstance(value, str) or not value.isdigit() or int(value) < low:
        raise StripeError(
            400, "invalid_request_error", f"Invalid integer: {value}", "parameter_invalid_integer", name
        )
    return int(value)


class FakeStripe(FakeServer[Seen]):
    """A Stripe API on 127.0.0.1 for one secret key."""

    label = "Stripe"
    methods = ("GET", "POST", "DELETE")
    hang_seconds = 10.0

    def __init__(self, secret_key: str) -> None:
        super().__init__()
        self.secret_key = secret_key
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refund_status = "succeeded"  # what a new refund starts as (card refunds usually succeed at once)
        self.cards: dict[str, dict[str, str]] = {}  # PaymentIntent id -> the card that paid it
        self._intent_metadata: dict[str, dict[str, str]] = {}  # session id -> payment_intent_data.metadata
        self._replays: dict[str, tuple[tuple[str, str, Any], bytes]] = {}

    def seen(self, method: str, path: str) -> list[Seen]:
        return self.recorded(lambda r: r.method == method and r.path == path)

    # ---- what happens at Stripe without the shop asking (the buyer pays, the merchant refunds)
    def session_for(self, order_id: str) -> dict[str, Any] | None:
        with self._lock:
            made = [s for s in self.sessions.values() if s["client_reference_id"] == order_id]
            return made[-1] if made else None

    def pay(
        self,
        intent_id: str,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        session_id: str | None = None,
        status: str = "succeeded",
        card: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The PaymentIntent `intent_id` in `status` (succeeded: the buyer paid, and `session_id`
        completes), paid with `card` ({"fingerprint", "country"}) if given."""
        with self._lock:
            if card is not None:
                self.cards[intent_id] = dict(card)
            intent = self.payment_intents.setdefault(
                intent_id,
                {
                    "id": intent_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_capturable": 0,
                    "amount_received": 0,
                    "capture_method": "automatic_async",
                    "created": int(time.time()),
                    "currency": currency.lower(),
                    "latest_charge": None,
                    "livemode": False,
                    "metadata": dict(metadata),
                    "payment_method": None,
                    "payment_method_types": ["card"],
                    "status": "requires_payment_method",
                },
            )
            intent["status"] = status
            if status == "succeeded":
                intent["amount_received"] = amount
                intent["latest_charge"] = intent["latest_charge"] or "ch_" + intent_id[3:]
                intent["payment_method"] = intent["payment_method"] or "pm_" + intent_id[3:]
            if session_id in self.sessions and status == "succeeded":
                self.sessions[session_id].update(
                    payment_intent=intent_id, payment_status="paid", status="complete", url=None
                )
            return intent

    def refund_everything(self, intent_id: str) -> None:
        """The whole payment is back with the buyer: our refunds succeed, the rest is refunded from the dashboard."""
        with self._lock:
            for refund in self.refunds.values():
                if refund["payment_intent"] == intent_id and refund["status"] in (
                    "pending",
                    "requires_action",
                ):
                    refund["status"] = "succeeded"
            left = self._refundable(self.payment_intents[intent_id])
            if left:
                self._new_refund(self.payment_intents[intent_id], left, {})

    def set_refund_status(self, refund_id: str, status: str) -> None:
        """Our refund (by the shop's `metadata.refund_id`) moves on, as Stripe's processing does."""
        assert status in REFUND_STATUSES
        with self._lock:
            for refund in self.refunds.values():
                if refund["metadata"].get("refund_id") == refund_id:
                    refund["status"] = status

    # ---- HTTP (tests/providers/fake_server.py serves, records and plays the scripts)
    def record(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Seen:
        parts = urlsplit(target)
        try:
            form = decode_form(body) if method == "POST" else {}
        except (UnicodeDecodeError, ValueError):
            form = {"<undecodable>": body.decode(errors="replace")}
        return Seen(method, parts.path, dict(parse_qsl(parts.query)), headers, form)

    def failure(self, request: Seen, status: int) -> Answer:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        return self._json(status, StripeError(status, kind, "Scripted failure.").body())

    def answer(self, request: Seen) -> Answer:
        with self._lock:
            try:
                if request.path.startswith("/c/pay/"):  # the hosted page the buyer is sent to
                    page = f"<!doctype html><title>Stripe Checkout (fake)</title><p>{html.escape(request.path[7:])}</p>"
                    return 200, self._headers("text/html; charset=utf-8"), page.encode()
                self._authenticate(request.headers)
                if "<undecodable>" in request.form:
                    raise StripeError(400, "invalid_request_error", "Invalid request body.")
                return self._idempotent(request)
            except StripeError as error:
                return self._json(error.status, error.body())

    @staticmethod
    def _headers(
        content_type: str = "application/json", extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        return {"Content-Type": content_type, "Request-Id": "req_" + secrets.token_hex(7), **(extra or {})}

    def _json(self, status: int, answer: dict[str, Any]) -> Answer:
        return status, self._headers(), json.dumps(answer).encode()

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.encode(), self.secret_key.encode()):
            # Stripe names the key it got (masked); the fake never repeats a key at all.
            raise StripeError(401, "invalid_request_error", "Invalid API Key provided.")

    def _idempotent(self, request: Seen) -> Answer:
        method, path, form = request.method, request.path, request.form
        key = request.headers.get("idempotency-key") if method == "POST" else None
        if key is not None and key in self._replays:
            first, saved = self._replays[key]
            if first != (method, path, form):
                raise StripeError(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return 200, self._headers(extra={"Idempotent-Replayed": "true", "Idempotency-Key": key}), saved
        answer = json.dumps(self._route(method, path, request.query, form)).encode()
        if key is not None:  # Stripe keeps a key's result for 24 hours; the fake keeps successes, forever
            self._replays[key] = ((method, path, form), answer)
        return 200, self._headers(extra={"Idempotency-Key": key} if key else None), answer

    def _route(self, method: str, path: str, query: dict[str, str], form: dict[str, Any]) -> dict[str, Any]:
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            return self._create_session(form)
        if (method, path) == ("GET", "/v1/payment_intents/search"):
            return self._search(query)
        if (method, path) == ("POST", "/v1/refunds"):
            return self._create_refund(form)
        if (method, path) == ("GET", "/v1/refunds"):
            return self._list_refunds(query)
        one = re.fullmatch(r"/v1/(checkout/sessions|payment_intents|refunds)/([A-Za-z0-9_]+)", path)
        if method == "GET" and one:
            objects, kind = {
                "checkout/sessions": (self.sessions, "checkout.session"),
                "payment_intents": (self.payment_intents, "payment_intent"),
                "refunds": (self.refunds, "refund"),
            }[one[1]]
            found = self._get(objects, one[2], kind)
            # `expand[]=latest_charge` on a PaymentIntent: the Charge in place of its id
            if kind == "payment_intent" and found["latest_charge"] and "latest_charge" in query.values():
                return {**found, "latest_charge": self.charge_of(found)}
            return found
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    @staticmethod
    def _get(objects: dict[str, dict[str, Any]], object_id: str, kind: str) -> dict[str, Any]:
        if object_id not in objects:
            raise StripeError(
                404, "invalid_request_error", f"No such {kind}: '{object_id}'", "resource_missing", "id"
            )
        return objects[object_id]

    def _create_session(self, form: dict[str, Any]) -> dict[str, Any]:
        def invalid(param: str, message: str) -> StripeError:
            return StripeError(400, "invalid_request_error", message, "parameter_invalid", param)

        if form.get("mode") != "payment":
            raise invalid("mode", "This fake only takes mode=payment.")
        items = form.get("line_items")
        if not isinstance(items, list) or not items:
            raise invalid("line_items", "line_items is required in payment mode.")
        currencies, total = set(), 0
        for index, item in enumerate(items):
            price = item.get("price_data") if isinstance(item, dict) else None
            if (
                not isinstance(price, dict)
                or not isinstance(price.get("product_data"), dict)
                or not price["product_data"].get("name")
            ):
                raise invalid(
                    f"line_items[{index}][price_data]", "price_data with product_data[name] is required."
                )
            if not re.fullmatch(r"[a-z]{3}", str(price.get("currency"))):
                raise invalid(f"line_items[{index}][price_data][currency]", "Invalid currency.")
            currencies.add(price["currency"])
            unit = _integer(f"line_items[{index}][price_data][unit_amount]", price.get("unit_amount"))
            total += unit * _integer(f"line_items[{index}][quantity]", item.get("quantity"), low=1)
        if len(currencies) != 1:
            raise invalid("line_items", "All line items must be in one currency.")
        if not form.get("success_url"):
            raise invalid("success_url", "success_url is required for a hosted Checkout Session.")
        now = int(time.time())
        expires_at = _integer("expires_at", form.get("expires_at", str(now + 86400)))
        if not now + 1800 <= expires_at <= now + 86400:
            raise invalid(
                "expires_at",
                "The Checkout Session must expire between 30 minutes and 24 hours from creation.",
            )
        session_id = "cs_test_" + secrets.token_hex(24)
        metadata = form.get("metadata") or {}
        self._intent_metadata[session_id] = (form.get("payment_intent_data") or {}).get("metadata") or {}
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": form.get("client_reference_id"),
            "created": now,
            "currency": currencies.pop(),
            "customer": None,
            "customer_details": None,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": metadata,
            "mode": "payment",
            "payment_intent": None,  # made when the buyer confirms (API versions since 2022-08-01)
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form["success_url"],
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.url}/c/pay/{session_id}",
        }
        return self.sessions[session_id]

    def intent_metadata(self, session_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._intent_metadata.get(session_id, {}))

    def _search(self, query: dict[str, str]) -> dict[str, Any]:
        text = query.get("query", "")
        clauses = re.split(r"\s+AND\s+", text.strip())
        wanted: list[tuple[str, str, str]] = []
        for clause in clauses:
            match = _CLAUSE.fullmatch(clause)
            if match is None:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Invalid search query: {text}",
                    "parameter_invalid",
                    "query",
                )
            value = re.sub(r"\\(.)", r"\1", match["value"])
            wanted.append(
                ("metadata", match["key"], value) if match["key"] else ("field", match["field"], value)
            )
        limit = _integer("limit", query.get("limit", "10"), low=1)
        start = _integer("page", query.get("page", "0"))
        found = [
            intent
            for intent in sorted(self.payment_intents.values(), key=lambda i: -i["created"])
            if all(
                (intent["metadata"].get(name) if where == "metadata" else intent[name]) == value
                for where, name, value in wanted
            )
        ]
        page = found[start : start + min(limit, 100)]
        # `expand[]=` (curl's form) or `expand[0]=` (the SDKs'): the Charge in place of its id
        if any(key.startswith("expand[") and value == "data.latest_charge" for key, value in query.items()):
            page = [{**i, "latest_charge": self.charge_of(i) if i["latest_charge"] else None} for i in page]
        more = start + len(page) < len(found)
        return {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": str(start + len(page)) if more else None,
            "url": "/v1/payment_intents/search",
        }

    def charge_of(self, intent: dict[str, Any]) -> dict[str, Any]:
        """The Charge of a paid PaymentIntent, as `latest_charge` expands to (the parts the shop reads)."""
        card = self.cards.get(intent["id"], {})
        given = intent["amount_received"] - self._refundable(intent)
        return {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount_received"],
            "amount_captured": intent["amount_received"],
            "amount_refunded": given,
            "captured": True,
            "currency": intent["currency"],
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "payment_method_details": {
                "card": {
                    "brand": "visa",
                    "country": card.get("country"),
                    "exp_month": 12,
                    "exp_year": 2030,
                    "fingerprint": card.get("fingerprint"),
                    "funding": "credit",
                    "last4": "4242",
                    "wallet": None,
                },
                "type": "card",
            },
            "refunded": given == intent["amount_received"],
            "status": "succeeded",
        }

    def _refundable(self, intent: dict[str, Any]) -> int:
        given = sum(
            r["amount"]
            for r in self.refunds.values()
            if r["payment_intent"] == intent["id"] and r["status"] not in ("failed", "canceled")
        )
        return intent["amount_received"] - given

    def _new_refund(
        self, intent: dict[str, Any], amount: int, metadata: dict[str, str], status: str = "succeeded"
    ) -> dict[str, Any]:
        refund_id = "re_" + secrets.token_hex(12)
        self.refunds[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": intent["latest_charge"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": metadata,
            "payment_intent": intent["id"],
            "reason": None,
            "status": status,
        }
        return self.refunds[refund_id]

    def _create_refund(self, form: dict[str, Any]) -> dict[str, Any]:
        intent_id = form.get("payment_intent")
        if not isinstance(intent_id, str):
            raise StripeError(
                400,
                "invalid_request_error",
                "One of charge or payment_intent is required.",
                "parameter_missing",
            )
        intent = self._get(self.payment_intents, intent_id, "payment_intent")
        if intent["status"] != "succeeded":
            raise StripeError(
                400,
                "invalid_request_error",
                "This PaymentIntent has no successful charge to refund.",
                "charge_not_refundable",
            )
        left = self._refundable(intent)
        amount = _integer("amount", form.get("amount", str(left)), low=1)
        if amount > left:
            code = "charge_already_refunded" if left == 0 else "amount_too_large"
            raise StripeError(
                400,
                "invalid_request_error",
                "Refund amount is greater than what is left to refund.",
                code,
                "amount",
            )
        return self._new_refund(intent, amount, dict(form.get("metadata") or {}), self.refund_status)

    def _list_refunds(self, query: dict[str, str]) -> dict[str, Any]:
        limit = min(_integer("limit", query.get("limit", "10"), low=1), 100)
        refunds = [
            r
            for r in sorted(self.refunds.values(), key=lambda r: (-r["created"], r["id"]))
            if query.get("payment_intent") in (None, r["payment_intent"])
        ]
        return {
            "object": "list",
            "data": refunds[:limit],
            "has_more": len(refunds) > limit,
            "url": "/v1/refunds",
        }


class Kit:
    """Stripe's side of the shop (tests/providers/__init__.py)."""

    name = "stripe"
    currency = "CNY"
    other_currency = "USD"

    def __init__(self) -> None:
        # hex: strong, and never mistaken for a placeholder by the shop's config check
        self.secret_key = "sk_test_" + secrets.token_hex(24)
        self.webhook_secret = "whsec_" + secrets.token_hex(24)
        self.server = FakeStripe(self.secret_key)
        self._built: dict[tuple[Any, ...], bytes] = {}
        # The buyer's card: its fingerprint (16 characters, as Stripe's) and country.
        self.buyer, self.card_country = secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"), "US"

    def paid_by(self, via: str) -> tuple[str | None, str | None]:
        # checkout.session.completed carries no card; the search expands the PaymentIntent's Charge.
        return (None, None) if via == "callback" else (f"stripe:{self.buyer}", self.card_country)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def config(self) -> dict[str, Any]:
        return {
            "secret_key": self.secret_key,
            "webhook_secret": self.webhook_secret,
            "api_url": self.server.url,
        }

    # ---- callbacks
    def paid(
        self,
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> Callback:
        return self.signed(self._paid_body(order, amount, currency, order_id))

    def pay_without_callback(self, order: dict[str, Any]) -> str:
        """The buyer paid and Stripe's callback is lost: the PaymentIntent is succeeded at the fake
        (query finds it) and nothing is sent. Returns its id, the one `paid(order)` reports."""
        self._paid_body(order)
        return self.payment_intent_of(order)

    def refunded(self, order: dict[str, Any]) -> Callback:
        order_id, total = order["order_id"], order["total"]
        key = ("refunded", order_id)
        if key not in self._built:
            self._paid_body(order)  # the payment exists at Stripe before it can be refunded
            intent_id = self.payment_intent_of(order)
            self.server.refund_everything(intent_id)
            amount = stripe_amount(total["amount"], total["currency"])
            charge = {
                "id": self.server.payment_intents[intent_id]["latest_charge"],
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": amount,
                "captured": True,
                "payment_method": self.server.payment_intents[intent_id]["payment_method"],
                "payment_method_details": self.server.charge_of(self.server.payment_intents[intent_id])[
                    "payment_method_details"
                ],
                "created": int(time.time()),
                "currency": total["currency"].lower(),
                "livemode": False,
                # PaymentIntent metadata, copied to its Charge when the payment was confirmed
                "metadata": dict(self.server.payment_intents[intent_id]["metadata"]),
                "paid": True,
                "payment_intent": intent_id,
                "refunded": True,
                "status": "succeeded",
            }
            previous = {"amount_refunded": 0, "refunded": False}
            self._built[key] = self._event("charge.refunded", charge, _id("evt_", *key), previous)
        return self.signed(self._built[key])

    def disputed(self, order: dict[str, Any], dispute: str = "1", reason: str = "fraudulent") -> Callback:
        """`charge.dispute.created` for the order's payment (which exists at Stripe first): the buyer
        charged it back. The same `dispute` is the same event (Stripe's retry)."""
        order_id, total = order["order_id"], order["total"]
        key = ("disputed", order_id, dispute)
        if key not in self._built:
            self._paid_body(order)
            intent = self.server.payment_intents[self.payment_intent_of(order)]
            obj = {
                "id": _id("dp_", *key),
                "object": "dispute",
                "amount": stripe_amount(total["amount"], total["currency"]),
                "balance_transactions": [],
                "charge": intent["latest_charge"],
                "created": int(time.time()),
                "currency": total["currency"].lower(),
                "evidence": {"customer_email_address": None, "uncategorized_text": None},
                "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False},
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},  # a dispute's own: Stripe copies no metadata of the payment onto it
                "payment_intent": intent["id"],
                "reason": reason,
                "status": "needs_response",
            }
            self._built[key] = self._event("charge.dispute.created", obj, _id("evt_", *key))
        return self.signed(self._built[key])

    def tampered(self, callback: Callback) -> Callback:
        # A new event id: unsigned, the copy would pass every other check as a fresh event.
        event = json.loads(callback.body)
        event["id"] = _id("evt_", "tampered", event["id"])
        return Callback(json.dumps(event).encode(), dict(callback.headers))

    def wrong_key(self, order: dict[str, Any]) -> Callback:
        return self.signed(self._paid_body(order), secret="whsec_" + secrets.token_hex(24))

    def stale(self, order: dict[str, Any]) -> Callback:
        return self.signed(self._paid_body(order), timestamp=int(time.time()) - 2 * TOLERANCE)

    def probe(self, order: dict[str, Any]) -> None:
        return None  # Stripe has no signature probes

    def acknowledged(self, status: int, body: bytes) -> bool:
        return 200 <= status < 300  # any 2xx stops Stripe's retries

    def lost(self, order: dict[str, Any]) -> None:
        self.pay_without_callback(order)

    def refunded_amounts(self, order: dict[str, Any]) -> list[int]:
        intent_id = self.payment_intent_of(order)
        with self.server._lock:
            refunds = [r for r in self.server.refunds.values() if r["payment_intent"] == intent_id]
        return [r["amount"] for r in refunds if r["status"] not in ("failed", "canceled")]

    # ---- building blocks
    def signed(self, body: bytes, secret: str | None = None, timestamp: int | None = None) -> Callback:
        header = stripe_signature(
            secret or self.webhook_secret, body, int(time.time()) if timestamp is None else timestamp
        )
        return Callback(body, {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"})

    def payment_intent_of(self, order: dict[str, Any]) -> str:
        """The PaymentIntent `paid(order)` reports."""
        return _id("pi_", *self._variant(order))

    @staticmethod
    def _variant(
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> tuple[str, str, str, int, str]:
        total = order["total"]
        return (
            "paid",
            order["order_id"],
            order_id or order["order_id"],
            total["amount"] if amount is None else amount,
            (currency or total["currency"]).upper(),
        )

    def _paid_body(
        self,
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> bytes:
        """checkout.session.completed for the order's session, built once per variant (a retry is the same event)."""
        key = self._variant(order, amount, currency, order_id)
        _, real, claimed, amount, currency = key
        if key in self._built:
            return self._built[key]
        intent_id = _id("pi_", *key)
        made = self.server.session_for(real)
        session = dict(made) if made else self._session_as_made(real)
        self.server.pay(
            intent_id,
            stripe_amount(amount, currency),
            currency,
            {**self.server.intent_metadata(session["id"]), "order_id": claimed},
            session_id=session["id"] if made and intent_id == self.payment_intent_of(order) else None,
            card={"fingerprint": self.buyer, "country": self.card_country},
        )
        paid_amount = stripe_amount(amount, currency)
        session.update(
            amount_subtotal=paid_amount,
            amount_total=paid_amount,
            client_reference_id=claimed,
            currency=currency.lower(),
            customer_details={"email": order.get("email", "buyer@example.com"), "name": None},
            metadata={**session["metadata"], "order_id": claimed},
            payment_intent=intent_id,
            payment_status="paid",
            status="complete",
            url=None,
        )
        self._built[key] = self._event("checkout.session.completed", session, _id("evt_", *key))
        return self._built[key]

    def _session_as_made(self, order_id: str) -> dict[str, Any]:
        """The session start() would have made, for an order whose checkout the fake never saw."""
        now = int(time.time())
        return {
            "id": _id("cs_test_", order_id),
            "object": "checkout.session",
            "client_reference_id": order_id,
            "created": now,
            "expires_at": now + 1800,
            "livemode": False,
            "metadata": {"order_id": order_id},
            "mode": "payment",
            "payment_method_types": ["card"],
            "ui_mode": "hosted",
        }

    def _event(
        self, kind: str, obj: dict[str, Any], event_id: str, previous: dict[str, Any] | None = None
    ) -> bytes:
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        return json.dumps(event, separators=(",", ":")).encode()
