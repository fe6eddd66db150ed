"""Provider events, recorded once by their provider-assigned id (I5)."""

from datetime import timedelta

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from shared.orders import utcnow
from shared.payments import PaymentEvent
from shared.settings import settings
from shared.store.errors import condition_failed

KEEP_FOR = timedelta(days=90)


class PaymentEventItem(Model):
    class Meta:
        table_name: str | None = None

    event_key = UnicodeAttribute(hash_key=True)
    order_id = UnicodeAttribute()
    payment_id = UnicodeAttribute()
    applied = BooleanAttribute(default=False)
    received_at = UTCDateTimeAttribute()
    expires = NumberAttribute()  # TTL


def _key(event: PaymentEvent) -> str:
    return f"{event.provider}#{event.event_id}"


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

    def mark_applied(self, event: PaymentEvent) -> None:
        PaymentEventItem(event_key=_key(event)).update(actions=[PaymentEventItem.applied.set(True)])
