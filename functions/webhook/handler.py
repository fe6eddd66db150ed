"""Payment callbacks from every provider: verify, bind, record once, apply; reply as the provider expects."""

import base64
import contextlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from shared import adapters, observability
from shared.disputes import apply_dispute
from shared.errors import DomainError, NotFound
from shared.http import documented, install_error_handlers, request_body
from shared.ids import is_id
from shared.orders import Status
from shared.providers import PROVIDERS, REPLIES, Reply, registry
from shared.settings import settings
from shared.settlement import Outcome, apply_event
from shared.topup import UpstreamRetry, settle_topup
from shared.upstream import ANSWER_SIGNATURE, verify_callback

logger = Logger(service="webhook")
tracer = observability.tracer("webhook")
metrics = observability.metrics("webhook")


class CallbackRecorded(BaseModel):
    received: bool
    outcome: Outcome


app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app, logger)


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()


# Outcomes an operator hears of (template.yaml alarms, docs/operations.md runbooks), by their metric.
ALARMED = {Outcome.WRONG_AMOUNT: "PaymentsWrongAmount", Outcome.DISPUTED: "DisputesReceived"}


def _counted(outcome: Outcome) -> str:
    """The metric of a payment event's outcome: PaymentEventsApplied, PaymentEventsNeedsRefund, ..."""
    return "PaymentEvents" + outcome.value.title().replace("_", "")


def callback(name: str) -> Response[str]:
    provider = registry.provider(name)
    if provider is None:
        raise NotFound(f"payment provider '{name}' is not configured", code="provider_not_configured")
    headers = {key.lower(): value for key, value in app.current_event.headers.items()}
    metrics.add_dimension(name="provider", value=name)
    try:
        events = provider.verify_callback(headers, _raw_body(), now=int(time.time()))
    except DomainError as error:  # a bad signature, a stale or malformed callback: answered 4xx
        if error.status < 500:  # not the provider's API down while asked about a verified event (503)
            metrics.add_metric(name="CallbacksRejected", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="CallbacksVerified", unit=MetricUnit.Count, value=1)
    redrive_after = timedelta(seconds=settings().redrive_after_seconds)
    outcome = Outcome.IGNORED
    ports = adapters.ports()
    for event in events:
        if event.type == "payment.disputed":  # the merchant's risk rules learn from it (docs/risk.md)
            outcome = apply_dispute(event, ports, adapters.risk_rules().add_blocked, ports.clock())
        else:
            outcome = apply_event(event, ports, ports.clock(), redrive_after)
        metrics.add_metric(name=_counted(outcome), unit=MetricUnit.Count, value=1)
        if outcome in ALARMED:  # for its alarm, whichever provider: no provider dimension
            observability.count_for_alarm(ALARMED[outcome], "webhook")
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


def _callback_from(name: str) -> Callable[[], Response[str]]:
    def route() -> Response[str]:
        return callback(name)

    route.__name__ = f"callback_{name}"
    return route


def _recorded(reply: Reply) -> dict[int, Any]:
    """The provider's own "recorded, don't send again" (docs/payments.md), then the errors."""
    if reply.body is None:
        return documented(reply.status, "recorded: do not send again", CallbackRecorded, errors=[400, 404])
    media = reply.content_type if reply.body else None
    return documented(
        reply.status, f"recorded: do not send again ({reply.body!r})", media=media, errors=[400, 404]
    )


# The headers each provider's callback is signed with (shared/providers/*: `verify_callback`), for the
# document: a callback without them is 400 `invalid_signature` (Alipay signs inside its form body).
SIGNATURE_HEADERS = {
    "sandbox": ("Sandbox-Signature",),
    "stripe": ("Stripe-Signature",),
    "alipay": (),
    "wechatpay": ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial"),
}


def _signed_callback(name: str) -> dict[str, Any]:
    """The route's OpenAPI request: the raw body, and the signature headers it must carry."""
    headers = [
        {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
        for header in SIGNATURE_HEADERS[name]
    ]
    body = request_body("the provider's signed callback, read as raw bytes", text=True)
    return {**body, "parameters": headers} if headers else body


for _name in PROVIDERS:  # one route per provider, as API Gateway has them (template.yaml)
    app.post(
        f"/webhooks/{_name}",
        summary=f"Payment callbacks from {_name} (signed; see docs/payments.md)",
        tags=["payment callbacks"],
        operation_id=f"callback_{_name}",
        openapi_extensions=_signed_callback(_name),
        responses=_recorded(REPLIES[_name]),
    )(_callback_from(_name))


class UpstreamCallbackRecorded(BaseModel):
    received: bool
    status: str  # the order's, after the callback


@app.post(
    "/webhooks/upstream/<merchant_id>/<name>",
    summary="Top-up callbacks from a merchant's upstream (signed; see docs/topup.md)",
    tags=["payment callbacks"],
    openapi_extensions={
        **request_body("the upstream's signed callback, read as raw bytes", text=True),
        "parameters": [
            {"name": ANSWER_SIGNATURE, "in": "header", "required": True, "schema": {"type": "string"}}
        ],
    },
    responses=documented(200, "recorded: do not send again", UpstreamCallbackRecorded, errors=[400, 404]),
)
def upstream_callback(merchant_id: str, name: str) -> Response[str]:
    """A signed answer about one top-up order, from the upstream its product names; a callback about
    another merchant's order, or another upstream's, is refused as if the order did not exist."""
    upstream = adapters.upstreams().recent_upstream(merchant_id, name) if is_id(merchant_id, "mer") else None
    if upstream is None:
        raise NotFound("no such upstream", code="upstream_not_found")
    headers = {key.lower(): value for key, value in app.current_event.headers.items()}
    try:
        answer = verify_callback(upstream.secret, headers, _raw_body(), now=int(time.time()))
    except DomainError:
        metrics.add_metric(name="UpstreamCallbacksRejected", unit=MetricUnit.Count, value=1)
        raise
    ports = adapters.ports()
    key = answer.idempotency_key
    order = ports.orders.get(key) if is_id(key, "ord") else None
    product = ports.products.recent_product(order.product_id) if order is not None else None
    topup = product.topup if product is not None else None
    if order is None or order.merchant_id != merchant_id or topup is None or topup.upstream != name:
        raise NotFound("no such top-up order for this upstream", code="order_not_found")
    status = order.status
    if status == Status.PAID:
        with contextlib.suppress(UpstreamRetry):  # nothing applied: its delivery asks again, later
            status = settle_topup(order, answer, ports, ports.clock())
    logger.info("upstream callback", extra={"order_id": order.order_id, "upstream_status": answer.status})
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps({"received": True, "status": status.value}),
    )


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
