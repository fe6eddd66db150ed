"""Merchant routes: the merchant's webhook (where its order and stock events are POSTed, signed)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import Webhook, WebhookSet
from shared import adapters, queues
from shared.errors import Busy, NotFound
from shared.http import documented, json_response
from shared.notify import (
    EVENT_TYPES,
    MAX_URL_LENGTH,
    EventType,
    check_webhook_url,
    new_secret,
    test_event,
)
from shared.settings import settings

router = Router()


class WebhookTestQueued(BaseModel):
    """A webhook.test event on its way to the merchant's webhook."""

    event_id: str
    type: str


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[EventType] = Field(default_factory=lambda: list(EVENT_TYPES), min_length=1)


@router.put(
    "/merchant/webhook",
    summary="Set the webhook (again: a new secret)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        200, "the webhook and its secret, shown in this answer only", WebhookSet, errors=[400, 401, 403, 415]
    ),
)
def put_webhook(body: Annotated[WebhookBody, Body()]) -> Response[str]:
    """Set the webhook (again: a new secret); the secret is in this answer only."""
    merchant = merchant_id(router)
    url = check_webhook_url(body.url, local_mode=settings().local_mode)
    events = tuple(t for t in EVENT_TYPES if t in body.events)
    webhook = adapters.webhooks().put_webhook(merchant, url, events, new_secret())
    logger.info("webhook set", extra={"events": list(events)})  # not the URL: it may carry a token
    return json_response(
        200, {"url": webhook.url, "events": list(webhook.events), "secret": webhook.secret.get_secret_value()}
    )


@router.get(
    "/merchant/webhook",
    summary="The webhook (never its secret)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the webhook", Webhook, errors=[401, 403, 404]),
)
def get_webhook() -> Response[str]:
    webhook = adapters.webhooks().webhook(merchant_id(router))
    if webhook is None:
        raise NotFound("no webhook is set", code="webhook_not_found")
    return json_response(200, {"url": webhook.url, "events": list(webhook.events)})


@router.delete(
    "/merchant/webhook",
    summary="Remove the webhook",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(204, "removed (or there was none)", errors=[401, 403]),
)
def delete_webhook() -> Response[str]:
    adapters.webhooks().delete_webhook(merchant_id(router))
    logger.info("webhook removed")
    return Response(status_code=204, body="")


@router.post(
    "/merchant/webhook/test",
    summary="Send a signed webhook.test event to the webhook",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        202, "queued: sent like any event (signed, retried)", WebhookTestQueued, errors=[401, 403, 404]
    ),
)
def post_webhook_test() -> Response[str]:
    """Queue a webhook.test event through the notify queue; each call is a new event."""
    merchant = merchant_id(router)
    if adapters.webhooks().webhook(merchant) is None:
        raise NotFound("no webhook is set", code="webhook_not_found")
    ports = adapters.ports()
    event = test_event(merchant, ports.clock())
    if not queues.publish(event, ports.notify):
        raise Busy("the test event could not be queued; try again")
    logger.info("webhook test queued", extra={"event_id": event.event_id})
    return json_response(202, {"event_id": event.event_id, "type": event.type})
