"""What the shop talks to outside its tables, in memory: the two queues (messages kept for
assertions), payment providers that answer as the PaymentProvider port promises (idempotent refunds
by refund id, payments found by a query), the merchants' code ciphers and a clock that moves only
when told."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from shared.codes import CodeCipher
from shared.mail import MailRequest
from shared.money import Money
from shared.notify import Notification, parse
from shared.orders import Order
from shared.payments import PaymentEvent
from shared.providers import REPLIES, PaymentProvider, PaymentStart, RefundRequest, RefundState, Reply
from shared.queues import NotifyMessage
from tests.fakes.hooks import Hooked, hooked


class FakeDeliveryQueue(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []  # order ids, in the order they were sent

    @hooked
    def send(self, order_id: str) -> None:
        self.sent.append(order_id)


class FakeNotifyQueue(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[NotifyMessage] = []

    @hooked
    def send(self, notification: Notification) -> None:
        self.send_body(NotifyMessage("webhook_event", notification.body().decode()))

    @hooked
    def send_body(self, message: NotifyMessage) -> None:
        self.messages.append(message)

    # ---------- for tests ----------

    def events(self, type_: str | None = None) -> list[Notification]:
        """The merchant events queued (of `type_`, if given), as their merchants will receive them."""
        found = [parse(m.body) for m in self.messages if m.kind == "webhook_event"]
        return [n for n in found if type_ is None or n.type == type_]

    def mails(self) -> list[MailRequest]:
        return [MailRequest.model_validate_json(m.body) for m in self.messages if m.kind == "buyer_mail"]


class FakePaymentProvider(Hooked):
    """A provider that takes every payment it is told of and refunds what it is asked to.

    `error`: raised by every call to the provider while set (ProviderUnavailable: it is down).
    `refund_answer`: the state a refund it has never seen gets (then `settle_refund` moves it on)."""

    def __init__(self, name: str = "sandbox") -> None:
        super().__init__()
        self.name = name
        self.error: Exception | None = None
        self.pay_kind: Literal["redirect", "qr"] = "redirect"
        self.refund_answer = RefundState.SUCCEEDED
        self.started: list[str] = []  # order ids whose payment was started
        self.payments: dict[str, list[PaymentEvent]] = {}  # what a query reports, by order
        self.refunds: dict[str, RefundState] = {}  # by refund id
        self.refunds_sent: list[RefundRequest] = []  # each refund the provider took (once per id)

    # ---------- the port (shared/providers, PaymentProvider) ----------

    @hooked
    def start(self, order: Order, return_url: str) -> PaymentStart:
        self._answer()
        self.started.append(order.order_id)
        return PaymentStart(kind=self.pay_kind, url=f"https://{self.name}.test/pay/{order.order_id}")

    @hooked
    def verify_callback(self, headers: Mapping[str, str], body: bytes, now: int) -> list[PaymentEvent]:
        """The body is the events themselves (a JSON list): the fake verifies nothing."""
        return [PaymentEvent.model_validate(event) for event in json.loads(body)]

    @hooked
    def acknowledgement(self) -> Reply:
        return REPLIES.get(self.name, Reply())

    @hooked
    def query(self, order_id: str) -> list[PaymentEvent]:
        self._answer()
        return list(self.payments.get(order_id, []))

    @hooked
    def refund(self, request: RefundRequest) -> RefundState:
        self._answer()
        if request.refund_id not in self.refunds:  # idempotent by refund id: asked twice, refunded once
            self.refunds[request.refund_id] = self.refund_answer
            self.refunds_sent.append(request)
        return self.refunds[request.refund_id]

    @hooked
    def refund_state(self, request: RefundRequest) -> RefundState | None:
        self._answer()
        return self.refunds.get(request.refund_id)

    # ---------- for tests ----------

    def payment(
        self,
        order: Order,
        *,
        amount: int | None = None,
        currency: str | None = None,
        payment_id: str | None = None,
        event_id: str | None = None,
        order_id: str | None = None,
    ) -> PaymentEvent:
        """A verified `payment.succeeded` for the order: its exact total unless told otherwise. The same
        payment (and event) as the one `FakePorts.add_order` paid the order with, by default."""
        payment_id = payment_id or default_payment_id(order.order_id)
        return PaymentEvent(
            provider=self.name,
            event_id=event_id or f"evt_{payment_id}",
            type="payment.succeeded",
            order_id=order_id or order.order_id,
            payment_id=payment_id,
            amount=Money(
                amount=order.total.amount if amount is None else amount,
                currency=currency or order.total.currency,
            ),
        )

    def pay(self, order: Order, **changes: object) -> PaymentEvent:
        """The buyer pays: a query reports the payment from now on; returns its callback's event."""
        event = self.payment(order, **changes)  # type: ignore[arg-type]
        self.payments.setdefault(event.order_id, []).append(event)
        return event

    def refund_event(
        self,
        order: Order,
        *,
        amount: int | None = None,
        currency: str | None = None,
        payment_id: str | None = None,
        event_id: str | None = None,
        refund_id: str | None = None,
    ) -> PaymentEvent:
        """A verified `refund.succeeded` for the order's payment: all of it unless told otherwise."""
        payment_id = payment_id or (
            order.payment.payment_id if order.payment else default_payment_id(order.order_id)
        )
        return PaymentEvent(
            provider=self.name,
            event_id=event_id or f"evt_rf_{refund_id or payment_id}",
            type="refund.succeeded",
            order_id=order.order_id,
            payment_id=payment_id,
            amount=Money(
                amount=order.total.amount if amount is None else amount,
                currency=currency or order.total.currency,
            ),
            refund_id=refund_id,
        )

    def settle_refund(self, refund_id: str, state: RefundState) -> None:
        """What became of a refund at the provider (a pending one succeeding, or failing)."""
        self.refunds[refund_id] = state

    def _answer(self) -> None:
        if self.error is not None:
            raise self.error


def default_payment_id(order_id: str) -> str:
    return f"pay_{order_id.removeprefix('ord_')}"


class FakeProviders(Hooked):
    """The providers this shop is configured with, by name."""

    def __init__(self, providers: Iterable[FakePaymentProvider] = ()) -> None:
        super().__init__()
        self.by_name: dict[str, FakePaymentProvider] = {p.name: p for p in providers}

    @hooked
    def provider(self, name: str) -> PaymentProvider | None:
        return self.by_name.get(name)

    @hooked
    def configured(self) -> list[str]:
        return sorted(self.by_name)

    def __getitem__(self, name: str) -> FakePaymentProvider:
        return self.by_name[name]


class FakeCiphers(Hooked):
    """Each merchant's code cipher, from a data key derived from its id (the real one is KMS's)."""

    def __init__(self) -> None:
        super().__init__()
        self._ciphers: dict[str, CodeCipher] = {}

    @hooked
    def __call__(self, merchant_id: str) -> CodeCipher:
        if merchant_id not in self._ciphers:
            self._ciphers[merchant_id] = CodeCipher(
                hashlib.sha256(f"fake-key:{merchant_id}".encode()).digest()
            )
        return self._ciphers[merchant_id]


class FixedClock:
    """Now, until a test moves it: `advance(minutes=16)`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**units)
        return self.now
