"""Merchant routes: the shop's settings (what buyers see of the merchant: name, logo, contact, ...)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import Shop
from shared import adapters
from shared.http import documented, json_response
from shared.shops import ShopSettings

router = Router()


def shop_body(merchant: str, shop: ShopSettings) -> dict:
    return {"merchant_id": merchant, **shop.model_dump(mode="json")}


@router.get(
    "/merchant/shop",
    summary="Your shop's settings",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the shop's settings", Shop, errors=[401, 403, 404]),
)
def get_shop() -> Response[str]:
    merchant = merchant_id(router)
    return json_response(200, shop_body(merchant, adapters.merchants().shop(merchant)))


@router.put(
    "/merchant/shop",
    summary="Set the shop's settings (all of them: a field left out is cleared)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the shop's settings as set", Shop, errors=[400, 401, 403, 404, 415]),
)
def put_shop(settings: Annotated[ShopSettings, Body()]) -> Response[str]:
    merchant = merchant_id(router)
    shop = adapters.merchants().set_shop(merchant, settings)
    logger.info("shop settings set", extra={"fields": sorted(settings.model_fields_set)})
    return json_response(200, shop_body(merchant, shop))
