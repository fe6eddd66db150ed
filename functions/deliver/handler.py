"""Deliver: a batch from the delivery queue; failed records are reported, retried, then dead-lettered."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.deliver.delivery import deliver, failure_reason
from shared import adapters
from shared.orders import utcnow
from shared.queues import order_id_of

logger = Logger(service="deliver")
metrics = Metrics(service="deliver")
processor = BatchProcessor(event_type=EventType.SQS)


def _record(record: SQSRecord) -> None:
    order_id = order_id_of(record.body)
    try:
        deliver(order_id, adapters.orders(), adapters.stock(), adapters.shop().cipher, now=utcnow())
    except Exception as error:
        metrics.add_metric(name="DeliveryFailures", unit=MetricUnit.Count, value=1)
        adapters.orders().record_delivery_failure(order_id, failure_reason(error), utcnow())
        logger.warning("delivery failed", extra={"order_id": order_id, "error": type(error).__name__})
        raise
    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
