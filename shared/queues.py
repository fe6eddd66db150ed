"""The delivery queue: a PAID order's id, sent for the deliver function to fulfil."""

import json

import boto3

from shared.settings import settings


class DeliveryQueue:
    def __init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self._url = settings().delivery_queue_url

    def send(self, order_id: str) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=json.dumps({"order_id": order_id}))
