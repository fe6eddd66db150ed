"""Notify: a batch from the notify queue, each message handled by its kind (shared/queues.py): a
merchant event is POSTed to its merchant's webhook, a buyer's mail request is written and sent through
SES (functions/notify/mail.py). A failed record is reported, hidden for its backoff, retried, and
dead-lettered after the queue's limit."""

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.notify import mail, webhooks
from shared import adapters, observability
from shared.mail import MailRequest
from shared.notify import parse
from shared.orders import utcnow
from shared.queues import NotANotifyMessage, NotifyKind, notify_kind, notify_queue

logger = Logger(service="notify")
tracer = observability.tracer("notify")
metrics = observability.metrics("notify")
# A batch whose every record failed is reported record by record too: a merchant's server being down
# is not an error of this function (Lambda's Errors metric stays for real crashes).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _retry_later(record: SQSRecord, about: dict[str, str], metric: str, message: str, error: str) -> None:
    """Count and log a failed record (never its body, address, URL or secret) and hide it for its backoff."""
    attempt = int(record.attributes.approximate_receive_count or 1)
    delay = webhooks.retry_delay(attempt)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    logger.warning(message, extra={**about, "attempt": attempt, "retry_in": delay, "error": error})
    notify_queue().retry_later(record.receipt_handle, delay)


def _mail(record: SQSRecord) -> None:
    """A buyer's mail; a failure is retried like a webhook."""
    about = {"message_id": record.message_id}
    try:
        request = MailRequest.model_validate_json(record.body)
        about["mail"] = request.mail
        done = mail.send(
            request,
            adapters.orders(),
            adapters.products(),
            adapters.merchants(),
            adapters.allocation(),
            now=utcnow(),
        )
    except Exception as error:
        _retry_later(record, about, "MailFailures", "mail not sent", type(error).__name__)
        raise
    metrics.add_metric(
        name="MailSent" if done == mail.Mailed.SENT else "MailSkipped", unit=MetricUnit.Count, value=1
    )
    logger.info("mail done", extra={**about, "outcome": done.value})


def _webhook_event(record: SQSRecord) -> None:
    """A merchant event, POSTed to its merchant's webhook."""
    about: dict[str, str] = {"message_id": record.message_id}
    try:
        notification = parse(record.body)
        about.update(event_id=notification.event_id, type=notification.type)
        sent = webhooks.send(notification, adapters.webhooks(), webhooks.pool(), now=int(time.time()))
    except Exception as error:
        # The error's kind and our own message only (ProviderError messages name no URL or secret).
        _retry_later(
            record, about, "WebhookFailures", "webhook not delivered", f"{type(error).__name__}: {error}"
        )
        raise
    sent_or_not = "WebhooksSent" if sent == webhooks.Sent.SENT else "NotificationsSkipped"
    metrics.add_metric(name=sent_or_not, unit=MetricUnit.Count, value=1)
    logger.info("notification done", extra={**about, "outcome": sent.value})


BY_KIND: dict[NotifyKind, Callable[[SQSRecord], None]] = {
    "webhook_event": _webhook_event,
    "buyer_mail": _mail,
}


def _record(record: SQSRecord) -> None:
    try:
        kind = notify_kind(record.raw_event.get("messageAttributes") or {}, record.body)
    except NotANotifyMessage as error:  # retried (a newer release's kind, after a rollback), then DLQ
        logger.warning(
            "notify message not handled", extra={"message_id": record.message_id, "error": str(error)}
        )
        raise
    BY_KIND[kind](record)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
