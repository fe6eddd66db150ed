"""The delivery queue: a PAID order's id, sent for the deliver function to fulfil (and read back by it
and by the ops CLI)."""

import json

from shared import aws
from shared.settings import settings


class DeliveryQueue:
    def __init__(self) -> None:
        self._sqs = aws.client("sqs")
        self._url = settings().delivery_queue_url

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
