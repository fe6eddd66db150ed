"""Payment callbacks from every provider: verify, bind, record once, apply; reply as the provider expects."""

import base64
import json
import time
from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.webhook.payment import Outcome, apply_event
from shared import adapters
from shared.errors import NotFound
from shared.http import install_error_handlers
from shared.orders import utcnow
from shared.providers import PROVIDERS, registry
from shared.settings import settings

logger = Logger(service="webhook")
app = APIGatewayHttpResolver()
install_error_handlers(app, logger)


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()


@app.post("/webhooks/<name>")
def callback(name: str) -> Response[str]:
    provider = registry.provider(name) if name in PROVIDERS else None
    if provider is None:
        raise NotFound(f"payment provider '{name}' is not configured", code="provider_not_configured")
    headers = {key.lower(): value for key, value in app.current_event.headers.items()}
    events = provider.verify_callback(headers, _raw_body(), now=int(time.time()))
    redrive_after = timedelta(seconds=settings().redrive_after_seconds)
    outcome = Outcome.IGNORED
    for event in events:
        outcome = apply_event(event, adapters.stores(), utcnow(), redrive_after)
        logger.info(
            "payment callback",
            extra={
                "provider": name,
                "type": event.type,
                "order_id": event.order_id,
                "outcome": outcome.value,
            },
        )
    if not events:
        logger.info("payment callback acknowledged, nothing to do", extra={"provider": name})
    reply = provider.acknowledgement()
    body = reply.body if reply.body is not None else json.dumps({"received": True, "outcome": outcome.value})
    return Response(status_code=reply.status, content_type=reply.content_type, body=body)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
