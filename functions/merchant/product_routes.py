"""Merchant routes: products."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.merchant.catalog import (
    ProductRequest,
    change_product,
    create_product,
    list_products,
    owned_product,
    parse_change,
    parse_product_query,
)
from functions.merchant.routing import logger, merchant_id
from shared import adapters
from shared.http import json_response, parse_json, text_body, validate
from shared.orders import utcnow
from shared.products import Product
from shared.settings import settings

router = Router()


def product_body(product: Product) -> dict:
    body = product.model_dump(mode="json", exclude={"product_id", "merchant_id", "shards"})
    return {"id": product.product_id, **body}


@router.post("/merchant/products")
def post_product() -> Response[str]:
    request = validate(ProductRequest, parse_json(text_body(router.current_event)))
    product = create_product(merchant_id(router), request, adapters.shop(), adapters.stock(), now=utcnow())
    logger.info("product created", extra={"product_id": product.product_id})
    return json_response(201, product_body(product))


@router.get("/merchant/products")
def get_products() -> Response[str]:
    query = parse_product_query(router.current_event.query_string_parameters)
    listing = list_products(merchant_id(router), query, adapters.shop(), settings().order_token_secret)
    return json_response(
        200, {"products": [product_body(p) for p in listing.products], "next_cursor": listing.next_cursor}
    )


@router.get("/merchant/products/<product_id>")
def get_product(product_id: str) -> Response[str]:
    return json_response(200, product_body(owned_product(merchant_id(router), product_id, adapters.shop())))


@router.patch("/merchant/products/<product_id>")
def patch_product(product_id: str) -> Response[str]:
    change = parse_change(parse_json(text_body(router.current_event)))
    product = change_product(merchant_id(router), product_id, change, adapters.shop())
    logger.info(
        "product changed", extra={"product_id": product.product_id, "fields": sorted(change.model_fields_set)}
    )
    return json_response(200, product_body(product))
