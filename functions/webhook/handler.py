"""Payment callbacks: verify, bind, record once, mark PAID, enqueue delivery; reply fast."""

import base64
import time
from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.webhook.payment import apply_payment
from shared import adapters
from shared.http import install_error_handlers, json_response
from shared.orders import utcnow
from shared.payments import parse_sandbox_event, verify_sandbox_signature
from shared.settings import settings

logger = Logger(service="webhook")
app = APIGatewayHttpResolver()
install_error_handlers(app, logger)


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()


@app.post("/webhooks/sandbox")
def sandbox_callback() -> Response[str]:
    config = settings()
    body = _raw_body()
    verify_sandbox_signature(
        config.sandbox_secret,
        app.current_event.headers.get("sandbox-signature"),
        body,
        now=int(time.time()),
        tolerance=config.signature_tolerance_seconds,
    )
    event = parse_sandbox_event(body)
    outcome = apply_payment(
        event,
        adapters.orders(),
        adapters.payment_events(),
        adapters.delivery_queue(),
        adapters.stock(),
        adapters.shop(),
        adapters.limits(),
        now=utcnow(),
        redrive_after=timedelta(seconds=config.redrive_after_seconds),
    )
    logger.info("payment callback", extra={"order_id": event.order_id, "outcome": outcome.value})
    return json_response(200, {"received": True, "outcome": outcome.value})


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
