"""Provider events, recorded once by their provider-assigned id (I5)."""

from datetime import timedelta

from pydantic import BaseModel
from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from shared.money import Money
from shared.orders import utcnow
from shared.payments import PaymentEvent
from shared.settings import settings
from shared.store.errors import condition_failed

KEEP_FOR = timedelta(days=90)


class NeedsRefundIndex(GlobalSecondaryIndex["PaymentEventItem"]):
    """Sparse: only payments that must be given back (e.g. a second payment for one order)."""

    class Meta:
        index_name = "needs_refund"
        projection = AllProjection()

    refund_due = UnicodeAttribute(hash_key=True)
    received_at = UTCDateTimeAttribute(range_key=True)


class PaymentEventItem(Model):
    class Meta:
        table_name: str | None = None

    event_key = UnicodeAttribute(hash_key=True)
    order_id = UnicodeAttribute()
    payment_id = UnicodeAttribute()
    applied = BooleanAttribute(default=False)
    received_at = UTCDateTimeAttribute()
    expires = NumberAttribute(null=True)  # TTL; removed while a refund is owed
    amount = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    refund_due = UnicodeAttribute(null=True)  # the provider, or `<provider>#failed`
    refund_error = UnicodeAttribute(null=True)
    needs_refund_index = NeedsRefundIndex()


class OwedPayment(BaseModel):
    event_key: str
    order_id: str
    payment_id: str
    amount: Money


def _key(event: PaymentEvent) -> str:
    return f"{event.provider}#{event.event_id}"


def _owed_key(provider: str, payment_id: str) -> str:
    """Where a payment owed back is kept: by the payment, never by the event that reported it."""
    return f"owed#{provider}#{payment_id}"


class PaymentEventStore:
    def __init__(self) -> None:
        PaymentEventItem.Meta.table_name = settings().payment_events_table

    def record(self, event: PaymentEvent) -> bool:
        """Record the event; False if it was already applied (so nothing is to be done again)."""
        now = utcnow()
        item = PaymentEventItem(
            event_key=_key(event),
            order_id=event.order_id,
            payment_id=event.payment_id,
            applied=False,
            received_at=now,
            expires=int((now + KEEP_FOR).timestamp()),
        )
        try:
            item.save(condition=PaymentEventItem.event_key.does_not_exist())
            return True
        except PutError as error:
            if not condition_failed(error):
                raise
        existing = PaymentEventItem.get(_key(event), consistent_read=True)
        return not existing.applied

    def mark_needs_refund(self, event: PaymentEvent) -> None:
        """Keep a payment that cannot be fulfilled (no expiry) where refunds will find it: one entry
        per payment (provider and payment id), however many events report it — a provider query and
        the callback, or a callback sent again — so it is owed back once. Safe to repeat."""
        now = utcnow()
        try:
            PaymentEventItem(
                event_key=_owed_key(event.provider, event.payment_id),
                order_id=event.order_id,
                payment_id=event.payment_id,
                applied=True,
                received_at=now,
                amount=event.amount.amount,
                currency=event.amount.currency,
                refund_due=event.provider,
            ).save(condition=PaymentEventItem.event_key.does_not_exist())
        except PutError as error:
            if not condition_failed(error):
                raise  # else: already owed (or already given back): nothing more is owed

    def refunds_due(self, provider: str) -> list[str]:
        """`<provider>#<order id>#<payment id>` of payments owed back to buyers, oldest first."""
        return [f"{provider}#{owed.order_id}#{owed.payment_id}" for owed in self.owed(provider)]

    def owed(self, provider: str, limit: int | None = 100) -> list[OwedPayment]:
        """Payments owed back to buyers (a second payment for one order, a late one), oldest first."""
        return [
            OwedPayment(
                event_key=item.event_key,
                order_id=item.order_id,
                payment_id=item.payment_id,
                amount=Money(amount=int(item.amount or 0), currency=str(item.currency)),
            )
            for item in PaymentEventItem.needs_refund_index.query(provider, limit=limit)
        ]

    def mark_refund_failed(self, event_key: str, provider: str, reason: str) -> None:
        """The provider refused to refund it: moved to the `<provider>#failed` partition of the index,
        where an operator finds it, out of the way of the refunds still to send."""
        PaymentEventItem(event_key=event_key).update(
            actions=[
                PaymentEventItem.refund_due.set(f"{provider}#failed"),
                PaymentEventItem.refund_error.set(reason[:500]),
            ]
        )

    def settle_owed(self, provider: str, order_id: str, payment_id: str) -> None:
        """A payment kept for refund was refunded (by us or from the provider's dashboard)."""
        self.mark_refunded(_owed_key(provider, payment_id))

    def mark_refunded(self, event_key: str) -> None:
        """The payment is back with the buyer: out of the index, and kept no longer than any event.
        The entry stays until then, so the same payment reported again is not owed twice."""
        try:
            PaymentEventItem(event_key=event_key).update(
                actions=[
                    PaymentEventItem.refund_due.remove(),
                    PaymentEventItem.expires.set(int((utcnow() + KEEP_FOR).timestamp())),
                ],
                condition=PaymentEventItem.event_key.exists(),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise

    def mark_applied(self, event: PaymentEvent) -> None:
        PaymentEventItem(event_key=_key(event)).update(actions=[PaymentEventItem.applied.set(True)])
