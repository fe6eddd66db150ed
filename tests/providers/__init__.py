"""Provider kits: what the conformance suite (tests/e2e/test_provider_conformance.py) needs from each
payment provider to play the provider's side against the shop.

Each kit module (`tests/providers/<name>.py`) defines `Kit`, whose instance:
- starts its fake provider server on 127.0.0.1 (`start()` / `stop()`), which speaks the provider's
  documented formats (create payment, query, refund, refund query) and records what it was asked;
- gives the shop's configuration for that provider (`config()`: the provider's entry in the provider
  secret, shared/providers/config.py, pointing its API URL at the fake server);
- builds callbacks as the real provider would send them, signed with the provider's real scheme.

A callback is `Callback(headers, body)`; the suite POSTs it to `/webhooks/<name>`.

Shared by the kits: tests/providers/fake_server.py (the fake servers' HTTP side, scripted failures and
request records) and tests/providers/keys.py (RSA keys and signatures). Shared by the provider tests
below: `running(kit)`, and `shop_order()` / `as_checkout()`, an order as the shop hands it to a
provider and as its checkout response shows it (what a kit builds callbacks from).
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

from shared.money import Money
from shared.orders import Order, SlotRange, Status, chain_event


@dataclass(frozen=True)
class Callback:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Kit(Protocol):
    name: str
    # What a shop of this provider's country sells in (Alipay / WeChat Pay: CNY only).
    currency: str
    # A currency the provider can report that the order is not in, for the wrong-currency case.
    other_currency: str
    # The buyer's account at the provider (Alipay buyer_id, WeChat openid, Stripe card fingerprint,
    # the sandbox's payer) that the kit's payments carry: random per kit, so a canary no log may hold.
    buyer: str

    def paid_by(self, via: Literal["callback", "query"]) -> tuple[str | None, str | None]:
        """(payer, card_country) as the shop must read them from `paid(order)` ("callback") or from
        the answer that finds `lost(order)` ("query"): `<provider>:<buyer>` and two capital letters,
        None where the provider's message carries none (docs/payments.md "Payer")."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def config(self) -> dict[str, Any] | None:
        """This provider's entry in the provider secret (None: configured by settings, as the sandbox)."""
        ...

    def paid(
        self,
        order: dict[str, Any],
        amount: int | None = None,
        currency: str | None = None,
        order_id: str | None = None,
    ) -> Callback:
        """A payment-succeeded callback for `order` (the checkout response of POST /api/orders), as the
        provider sends it after the buyer paid: correctly signed, with the order's total unless
        `amount` / `currency` / `order_id` say otherwise. Building it twice for one order gives the
        same provider event (same event id and payment id), as a provider's retry does."""
        ...

    def refunded(self, order: dict[str, Any]) -> Callback:
        """A refund-succeeded callback for the whole of `order`'s payment (the same payment id that
        `paid(order)` reports), as the provider sends it when a refund is done (e.g. a merchant
        refunded from the provider's dashboard)."""
        ...

    def tampered(self, callback: Callback) -> Callback:
        """The same callback with its signed content changed after signing (e.g. the amount)."""
        ...

    def wrong_key(self, order: dict[str, Any]) -> Callback:
        """`paid(order)` signed with a key that is not the provider's."""
        ...

    def stale(self, order: dict[str, Any]) -> Callback | None:
        """`paid(order)` signed correctly but with its signed timestamp outside the shop's window;
        None if the provider's scheme has no signed timestamp."""
        ...

    def probe(self, order: dict[str, Any]) -> Callback | None:
        """A signature-probe callback (WeChat Pay's `WECHATPAY/SIGNTEST/` signatures); None if the
        provider has none."""
        ...

    def acknowledged(self, status: int, body: bytes) -> bool:
        """True if this reply tells the provider the callback was received (Alipay: `success`)."""
        ...

    def lost(self, order: dict[str, Any]) -> None:
        """The buyer paid `order` in full and the provider's callback never reaches the shop: only
        asking the provider (reconcile) finds the payment, under the payment id `paid(order)` reports."""
        ...

    def refunded_amounts(self, order: dict[str, Any]) -> list[int]:
        """What the provider has given back of `order`'s payment, one entry per refund (minor units)."""
        ...


K = TypeVar("K", bound=Kit)


@contextmanager
def running(kit: K) -> Iterator[K]:
    """`kit` with its fake provider server started for the `with` block, stopped after it."""
    kit.start()
    try:
        yield kit
    finally:
        kit.stop()


def shop_order(
    provider: str,
    order_id: str | None = None,
    amount: int = 1999,
    currency: str = "CNY",
    created: datetime | None = None,
    minutes: int = 15,
) -> Order:
    """An unpaid order of one item as the shop holds it (what a provider's `start` is given): made at
    `created` (now unless given), reserved for `minutes`, with a new id unless `order_id` is given."""
    order_id = order_id or f"ord_{secrets.token_hex(10)}"  # as the shop makes them (new_id)
    created = created or datetime.now(UTC)
    return Order(
        order_id=order_id,
        merchant_id="mer_1",
        product_id="prd_1",
        quantity=1,
        total=Money(amount=amount, currency=currency),
        email="buyer@example.com",
        provider=provider,
        status=Status.PENDING_PAYMENT,
        access_token_hash="0" * 64,
        created_at=created,
        expires_at=created + timedelta(minutes=minutes),
        slots=[SlotRange(shard=0, start=0, count=1)],
        history=[chain_event(order_id, [], "order.created", created, {"quantity": 1})],
    )


def as_checkout(order: Order) -> dict[str, Any]:
    """`order` as the checkout response (POST /api/orders) shows it: what a kit builds callbacks from."""
    return {
        "order_id": order.order_id,
        "total": {"amount": order.total.amount, "currency": order.total.currency},
        "email": order.email,
    }
