"""Deliver: a batch from the delivery queue; failed records are reported and retried, and an order that
has used its retries is dead-lettered (functions/deliver/batch.py: why no other message pays for it)."""

from functools import cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.deliver.batch import DeliveryBatch, Limits, Outcome
from functions.deliver.delivery import RetriesExhausted, Retry, deliver, failure_reason
from functions.deliver.messages import DeliveryMessages
from shared import adapters, observability
from shared.settings import settings

logger = Logger(service="deliver")
tracer = observability.tracer("deliver")
metrics = observability.metrics("deliver")
# A batch whose every record failed is reported record by record too; Lambda's Errors metric (the
# DeliverErrors alarm) stays for the function's own crashes and timeouts.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
OUTCOME_METRICS = {
    Outcome.HANDED_BACK: "DeliveriesHandedBack",
    Outcome.DEAD_LETTERED: "DeliveriesDeadLettered",
}


@cache
def messages() -> DeliveryMessages:
    return DeliveryMessages()


def _deliver(order_id: str, retry: Retry | None) -> None:
    ports = adapters.ports()
    try:
        deliver(order_id, ports, now=ports.clock(), retry=retry)
    except RetriesExhausted:
        raise  # not started, so not a failure of its own: the last one stays on the order
    except Exception as error:
        metrics.add_metric(name="DeliveryFailures", unit=MetricUnit.Count, value=1)
        ports.orders.record_delivery_failure(order_id, failure_reason(error), ports.clock())
        logger.warning("delivery failed", extra={"order_id": order_id, "error": type(error).__name__})
        raise
    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=1)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    batch = DeliveryBatch(Limits.of(settings()), messages(), context.get_remaining_time_in_millis, _deliver)

    def record_handler(record: SQSRecord) -> None:
        outcome = batch.run(record)
        if outcome in OUTCOME_METRICS:
            metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)

    records = batch.triage(event["Records"])
    if len(records) < len(event["Records"]):
        handed_back = len(event["Records"]) - len(records)
        metrics.add_metric(name="DeliveriesHandedBack", unit=MetricUnit.Count, value=handed_back)
    if not records:  # every message was handed back (re-sent): nothing failed; Powertools refuses []
        return {"batchItemFailures": []}
    return process_partial_response(
        event={**event, "Records": records},
        record_handler=record_handler,
        processor=processor,
        context=context,
    )
