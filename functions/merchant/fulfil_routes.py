"""Merchant routes: manual delivery (the queue of paid orders waiting, and fulfilling one)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel

from functions.merchant.fulfil import Waiting, awaiting, fulfil
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from shared import adapters
from shared.fulfilment import Fulfilment
from shared.http import documented, json_response

router = Router()


class Fulfilments(BaseModel):
    orders: list[Waiting]


class Fulfilled(BaseModel):
    order_id: str
    status: str


@router.get(
    "/merchant/fulfilments",
    summary="Your paid manual orders waiting for you, the most urgent first",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        200, "up to 100 orders, by the time promised to the buyer", Fulfilments, errors=[401, 403]
    ),
)
def get_fulfilments() -> Response[str]:
    waiting = awaiting(merchant_id(router), adapters.orders())
    return json_response(200, Fulfilments(orders=waiting).model_dump(mode="json"))


@router.post(
    "/merchant/orders/<order_id>/fulfil",
    summary="Deliver a paid manual order by hand: a text, codes (one per unit), or both",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "delivered", Fulfilled, errors=[400, 401, 403, 404, 409, 415]),
)
def post_fulfil(order_id: str, body: Annotated[Fulfilment, Body()]) -> Response[str]:
    merchant = merchant_id(router)
    ports = adapters.ports()
    order = fulfil(merchant, order_id, body, ports, ports.clock())
    logger.info("order fulfilled by hand", extra={"order_id": order.order_id, "merchant_id": merchant})
    return json_response(200, Fulfilled(order_id=order.order_id, status=order.status.value).model_dump())
