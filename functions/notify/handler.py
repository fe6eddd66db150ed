"""Notify: a batch from the notify queue; each event is POSTed to its merchant's webhook. A failed
record is reported, hidden for its backoff, retried, and dead-lettered after the queue's limit."""

import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.notify import webhooks
from shared import adapters
from shared.notify import notify_queue, parse

logger = Logger(service="notify")
metrics = Metrics(service="notify")
# A batch whose every record failed is reported record by record too: a merchant's server being down
# is not an error of this function (Lambda's Errors metric stays for real crashes).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _record(record: SQSRecord) -> None:
    about: dict[str, str] = {"message_id": record.message_id}
    try:
        notification = parse(record.body)
        about.update(event_id=notification.event_id, type=notification.type)
        sent = webhooks.send(notification, adapters.shop(), webhooks.pool(), now=int(time.time()))
    except Exception as error:
        attempt = int(record.attributes.approximate_receive_count or 1)
        delay = webhooks.retry_delay(attempt)
        metrics.add_metric(name="WebhookFailures", unit=MetricUnit.Count, value=1)
        # Never the body, the URL or the secret: the error's kind and our own message only.
        logger.warning(
            "webhook not delivered",
            extra={
                **about,
                "attempt": attempt,
                "retry_in": delay,
                "error": f"{type(error).__name__}: {error}",
            },
        )
        notify_queue().retry_later(record.receipt_handle, delay)
        raise
    sent_or_not = "WebhooksSent" if sent == webhooks.Sent.SENT else "NotificationsSkipped"
    metrics.add_metric(name=sent_or_not, unit=MetricUnit.Count, value=1)
    logger.info("notification done", extra={**about, "outcome": sent.value})


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
