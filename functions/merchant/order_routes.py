"""Merchant routes: the merchant's orders (refunds)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.refund import refund_order
from functions.merchant.routing import logger, merchant_id
from shared import adapters
from shared.http import json_response, parse_json, text_body, validate
from shared.orders import Status, utcnow
from shared.refunds import refund_id_for

router = Router()


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


@router.post("/merchant/orders/<order_id>/refund")
def post_refund(order_id: str) -> Response[str]:
    merchant = merchant_id(router)
    raw = text_body(router.current_event)
    body = validate(RefundBody, parse_json(raw) if raw.strip() else {})
    order = refund_order(merchant, order_id, body.reason, adapters.orders(), adapters.stock(), utcnow())
    logger.info("refund requested", extra={"order_id": order.order_id, "status": order.status.value})
    return json_response(
        200 if order.status == Status.REFUNDED else 202,
        {
            "order_id": order.order_id,
            "status": order.status.value,
            "refund_id": refund_id_for(order.order_id, order.refund_attempt),
        },
    )
