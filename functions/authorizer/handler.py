"""The HTTP API's Lambda authorizer: a merchant API key (stored hashed) -> that merchant's id."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import adapters, observability

logger = Logger(service="authorizer")
tracer = observability.tracer("authorizer")
metrics = observability.metrics("authorizer")


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    header = (event.get("headers") or {}).get("authorization", "")
    api_key = header[7:].strip() if header.lower().startswith("bearer ") else ""
    merchant_id = adapters.merchants().merchant_for_key(api_key) if api_key.startswith("mk_") else None
    # API Gateway keeps an answer 5 minutes per key: these count keys checked, not requests.
    outcome = "KeysRefused" if merchant_id is None else "KeysAccepted"
    metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
    if merchant_id is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"merchant_id": merchant_id}}
