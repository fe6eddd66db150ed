"""Merchant routes: the shop's settings (what buyers see of the merchant: name, logo, contact, ...)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import Shop
from functions.merchant.shop import set_shop
from shared import adapters
from shared.http import documented, json_response
from shared.shops import ShopChange, ShopSettings

router = Router()


def shop_body(merchant: str, shop: ShopSettings, version: int) -> dict:
    return {"merchant_id": merchant, **shop.model_dump(mode="json"), "version": version}


@router.get(
    "/merchant/shop",
    summary="Your shop's settings",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the shop's settings", Shop, errors=[401, 403, 404]),
)
def get_shop() -> Response[str]:
    merchant = merchant_id(router)
    return json_response(200, shop_body(merchant, *adapters.merchants().versioned_shop(merchant)))


@router.put(
    "/merchant/shop",
    summary="Set the shop's settings (all of them: a field left out is cleared)",
    description="With the `version` read by GET, 409 `version_conflict` if another write came since "
    "(nothing written); without it, the last write wins.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the shop's settings as set", Shop, errors=[400, 401, 403, 404, 409, 415]),
)
def put_shop(change: Annotated[ShopChange, Body()]) -> Response[str]:
    merchant = merchant_id(router)
    shop, version = set_shop(merchant, change, adapters.merchants())
    fields = sorted(change.model_fields_set - {"version"})
    logger.info("shop settings set", extra={"fields": fields, "version": version})
    return json_response(200, shop_body(merchant, shop, version))
