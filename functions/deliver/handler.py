"""Deliver: a batch from the delivery queue; failed records are reported, retried, then dead-lettered."""

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.deliver.delivery import deliver
from shared import adapters
from shared.orders import utcnow

logger = Logger(service="deliver")
processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    order_id = json.loads(record.body)["order_id"]
    deliver(order_id, adapters.orders(), adapters.stock(), now=utcnow())


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
