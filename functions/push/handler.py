"""Push: the orders table's stream (records whose status changed, template.yaml's filter and
functions/push/push.py's check) → a message to each connection watching the order. Downstream of the
write, so it never slows one; a batch answers which records to retry (`ReportBatchItemFailures`)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.push.push import push, status_changes
from shared import adapters, observability
from shared.orders import utcnow

logger = Logger(service="push")
tracer = observability.tracer("push")
metrics = observability.metrics("push")


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)  # stream images hold e-mail addresses: never logged
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    changes = status_changes(event.get("Records") or [])
    pushed = push(changes, adapters.connections(), adapters.sockets(), int(utcnow().timestamp()))
    for name, value in (
        ("Pushed", pushed.sent),
        ("PushesGone", pushed.gone),
        ("PushFailures", pushed.failed_posts),
        ("PushRecordsRetried", len(pushed.failed_records)),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in pushed.failed_records]}
