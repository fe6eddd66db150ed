"""Provider kits: what the conformance suite (tests/e2e/test_provider_conformance.py) needs from each
payment provider to play the provider's side against the shop.

Each kit module (`tests/providers/<name>.py`) defines `Kit`, whose instance:
- starts its fake provider server on 127.0.0.1 (`start()` / `stop()`), which speaks the provider's
  documented formats (create payment, query, refund, refund query) and records what it was asked;
- gives the shop's configuration for that provider (`config()`: the provider's entry in the provider
  secret, shared/providers/config.py, pointing its API URL at the fake server);
- builds callbacks as the real provider would send them, signed with the provider's real scheme.

A callback is `Callback(headers, body)`; the suite POSTs it to `/webhooks/<name>`.
"""

from dataclasses import dataclass, field
from typing import Any, Protocol


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
