"""The shop's two SQS queues, the one place that sends to them.

The delivery queue carries a PAID order's id for the deliver function to fulfil. The notify queue
carries merchant events (shared/notify.py) and buyers' mail requests (shared/mail.py) for the notify
function; each message says which it is in its `kind` message attribute, and its body is the event
or the request itself (a merchant event byte for byte as its merchant receives it). Both are read
back by their function and by the ops CLI.

Queuing a notification or a mail (`publish`, `emit`, `request_mail`, each given the queue: a use case's
`ports.notify`, shared/ports.py) never fails what caused it: a payment, delivery or refund stands
whether or not its message could be queued (the failure is logged).
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from shared import aws
from shared.mail import MailRequest
from shared.notify import Notification, OrderEventType, order_event
from shared.orders import Order
from shared.settings import settings

if TYPE_CHECKING:  # shared/ports.py names this module's NotifyMessage
    from shared.ports import NotifyPort

logger = logging.getLogger(__name__)

# ---------- the delivery queue ----------


class DeliveryQueue:
    def __init__(self) -> None:
        self._url = settings().delivery_queue_url

    @cached_property
    def _sqs(self) -> Any:
        return aws.client("sqs")  # on the first send: a function that never sends makes no client

    def send(self, order_id: str) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=json.dumps({"order_id": order_id}))


class NotADeliveryMessage(ValueError):
    pass


def order_id_of(body: str) -> str:
    """The order id a delivery message carries."""
    try:
        order_id = json.loads(body)["order_id"]
    except (ValueError, TypeError, KeyError):
        raise NotADeliveryMessage('message body is not {"order_id": ...}') from None
    if not isinstance(order_id, str) or not order_id:
        raise NotADeliveryMessage("message body has no order id")
    return order_id


# ---------- the notify queue ----------

NotifyKind = Literal["webhook_event", "buyer_mail"]
NOTIFY_KINDS: tuple[NotifyKind, ...] = get_args(NotifyKind)
KIND = "kind"  # the message attribute that names a notify message's kind


@dataclass(frozen=True)
class NotifyMessage:
    """One message for the notify function: what it is and its body."""

    kind: NotifyKind
    body: str


class NotANotifyMessage(ValueError):
    pass


class NotifyQueue:
    """The notify queue: merchant events and buyers' mail for the notify function."""

    def __init__(self) -> None:
        self._url = settings().notify_queue_url

    @cached_property
    def _sqs(self) -> Any:
        return aws.client("sqs")

    def send(self, notification: Notification) -> None:
        """A merchant event, for its merchant's webhook."""
        self.send_body(NotifyMessage("webhook_event", notification.body().decode()))

    def send_body(self, message: NotifyMessage) -> None:
        """Any message for the notify function, its kind in the `kind` attribute."""
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=message.body,
            MessageAttributes={KIND: {"DataType": "String", "StringValue": message.kind}},
        )

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds` (its backoff) before SQS hands it out again."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )


@cache
def notify_queue() -> NotifyQueue:
    return NotifyQueue()


def notify_kind(attributes: Mapping[str, Any], body: str) -> NotifyKind:
    """The kind of a received notify message, from its message attributes as Lambda's event has them.

    A message queued before messages had a kind (by the release before, or replayed from NotifyDLQ,
    which keeps messages 14 days) has none: its body tells, as it did then (docs/decisions.md)."""
    if KIND not in attributes:
        return _kind_before_kinds(body)
    kind = attributes[KIND].get("stringValue")
    if kind not in NOTIFY_KINDS:
        raise NotANotifyMessage(f"notify message of unknown kind {str(kind)[:40]!r}")
    return cast(NotifyKind, kind)


def _kind_before_kinds(body: str) -> NotifyKind:
    """A mail request had a `mail` field; anything else was taken for a merchant event."""
    try:
        return "buyer_mail" if "mail" in json.loads(body) else "webhook_event"
    except (ValueError, TypeError, RecursionError):
        return "webhook_event"


def publish(notification: Notification | None, queue: "NotifyPort") -> bool:
    """Queue a notification; False (logged) if it could not be: what caused it stands regardless."""
    if notification is None:
        return False
    try:
        queue.send(notification)
    except Exception as error:
        logger.warning(
            "notification not queued",
            extra={
                "event_id": notification.event_id,
                "type": notification.type,
                "error": type(error).__name__,
            },
        )
        return False
    return True


def emit(type_: OrderEventType, order: Order, queue: "NotifyPort") -> bool:
    """Tell the order's merchant that it reached PAID, DELIVERED or REFUNDED; never raises."""
    try:
        notification = order_event(type_, order)
    except Exception as error:
        logger.warning("notification not made", extra={"order_id": order.order_id, "error": str(error)})
        return False
    return publish(notification, queue)


def request_mail(mail: MailRequest, queue: "NotifyPort") -> bool:
    """Queue a buyer's mail; False (logged, without the address) if it could not be (a delivered order
    stays delivered, and the buyer can always ask for a look-up link)."""
    message = NotifyMessage("buyer_mail", mail.model_dump_json(exclude_none=True))
    try:
        queue.send_body(message)
    except Exception as error:
        logger.warning("mail not queued", extra={"mail": mail.mail, "error": type(error).__name__})
        return False
    return True
