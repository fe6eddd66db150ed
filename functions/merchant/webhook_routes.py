"""Merchant routes: the merchant's webhook (where its order and stock events are POSTed, signed)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.routing import logger, merchant_id
from shared import adapters
from shared.errors import NotFound
from shared.http import json_response, parse_json, text_body, validate
from shared.notify import EVENT_TYPES, MAX_URL_LENGTH, EventType, check_webhook_url, new_secret
from shared.settings import settings

router = Router()


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[EventType] = Field(default_factory=lambda: list(EVENT_TYPES), min_length=1)


@router.put("/merchant/webhook")
def put_webhook() -> Response[str]:
    """Set the webhook (again: a new secret); the secret is in this answer only."""
    merchant = merchant_id(router)
    body = validate(WebhookBody, parse_json(text_body(router.current_event)))
    url = check_webhook_url(body.url, local_mode=settings().local_mode)
    events = tuple(t for t in EVENT_TYPES if t in body.events)
    webhook = adapters.shop().put_webhook(merchant, url, events, new_secret())
    logger.info("webhook set", extra={"events": list(events)})  # not the URL: it may carry a token
    return json_response(
        200, {"url": webhook.url, "events": list(webhook.events), "secret": webhook.secret.get_secret_value()}
    )


@router.get("/merchant/webhook")
def get_webhook() -> Response[str]:
    webhook = adapters.shop().webhook(merchant_id(router))
    if webhook is None:
        raise NotFound("no webhook is set", code="webhook_not_found")
    return json_response(200, {"url": webhook.url, "events": list(webhook.events)})


@router.delete("/merchant/webhook")
def delete_webhook() -> Response[str]:
    adapters.shop().delete_webhook(merchant_id(router))
    logger.info("webhook removed")
    return Response(status_code=204, body="")
