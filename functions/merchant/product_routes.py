"""Merchant routes: products."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.merchant.catalog import (
    ProductChange,
    ProductQuery,
    ProductRequest,
    change_product,
    create_product,
    list_products,
    owned_product,
    parse_product_query,
)
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import MerchantProduct, ProductPage
from shared import adapters
from shared.http import documented, json_response, query_parameters
from shared.orders import utcnow
from shared.products import Product
from shared.settings import settings

router = Router()


def product_body(product: Product, example: bool = False) -> dict:
    """The product as the merchant API shows it; `example`: with a code its pattern could make (a
    generated product's, when it was created or its pattern given), so `CARD` vs `C\\ARD` shows."""
    body = product.model_dump(mode="json", exclude={"product_id", "merchant_id", "shards"})
    if example and product.generated is not None:
        body["example"] = product.generated.example()
    return {"id": product.product_id, **body}


@router.post(
    "/merchant/products",
    summary="Create a product",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(201, "the product", MerchantProduct, errors=[400, 401, 403, 415]),
)
def post_product(request: Annotated[ProductRequest, Body()]) -> Response[str]:
    product = create_product(
        merchant_id(router), request, adapters.products(), adapters.allocation(), now=utcnow()
    )
    logger.info("product created", extra={"product_id": product.product_id})
    return json_response(201, product_body(product, example=True))


@router.get(
    "/merchant/products",
    summary="Your products, newest first",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=query_parameters(ProductQuery),
    responses=documented(
        200, "a page of products; follow next_cursor until null", ProductPage, errors=[400, 401, 403]
    ),
)
def get_products() -> Response[str]:
    query = parse_product_query(router.current_event.query_string_parameters)
    listing = list_products(merchant_id(router), query, adapters.products(), settings().order_token_secret)
    return json_response(
        200, {"products": [product_body(p) for p in listing.products], "next_cursor": listing.next_cursor}
    )


@router.get(
    "/merchant/products/<product_id>",
    summary="One of your products",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the product", MerchantProduct, errors=[401, 403, 404]),
)
def get_product(product_id: str) -> Response[str]:
    return json_response(
        200, product_body(owned_product(merchant_id(router), product_id, adapters.products()))
    )


@router.patch(
    "/merchant/products/<product_id>",
    summary="Change the fields given (deactivate with active: false)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        200, "the product as changed", MerchantProduct, errors=[400, 401, 403, 404, 409, 415]
    ),
)
def patch_product(product_id: str, change: Annotated[ProductChange, Body()]) -> Response[str]:
    product = change_product(merchant_id(router), product_id, change, adapters.products())
    logger.info(
        "product changed", extra={"product_id": product.product_id, "fields": sorted(change.model_fields_set)}
    )
    return json_response(200, product_body(product, example="generated" in change.model_fields_set))
