"""Merchant routes: a product's stock (import, levels, removal, export)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.merchant import stock
from functions.merchant.catalog import owned_product
from functions.merchant.routing import logger, merchant_id
from shared import adapters
from shared.http import json_response, text_body
from shared.orders import utcnow

router = Router()


def _content_type() -> str:
    return router.current_event.headers.get("content-type", "text/plain")


@router.post("/merchant/products/<product_id>/stock")
def post_stock(product_id: str) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.shop())
    chunk, first_line = stock.import_headers(router.current_event.headers)
    answer = stock.import_codes(
        product,
        text_body(router.current_event),
        _content_type(),
        chunk,
        first_line,
        adapters.shop().cipher(merchant),
        adapters.stock(),
    )
    logger.info(
        "stock imported",
        extra={
            "product_id": product_id,
            "added": answer.body["added"],
            "chunk": chunk.number if chunk else None,
            "replayed": answer.replayed,
        },
    )
    response = json_response(200, answer.body)
    if answer.replayed:
        response.headers["Import-Replayed"] = "true"
    return response


@router.get("/merchant/products/<product_id>/stock")
def get_stock(product_id: str) -> Response[str]:
    product = owned_product(merchant_id(router), product_id, adapters.shop())
    levels = adapters.stock().levels(product.product_id, product.shards)
    return json_response(200, levels.model_dump())


@router.delete("/merchant/products/<product_id>/stock")
def delete_stock(product_id: str) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.shop())
    removed = stock.remove_codes(
        product,
        text_body(router.current_event),
        router.current_event.headers.get("content-type", "application/json"),
        adapters.shop().cipher(merchant),
        adapters.stock(),
    )
    logger.info("stock removed", extra={"product_id": product_id, "removed": removed["removed"]})
    return json_response(200, removed)


@router.get("/merchant/products/<product_id>/stock/export")
def export_stock(product_id: str) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.shop())
    query = router.current_event.query_string_parameters or {}
    page = stock.export_codes(
        merchant,
        product,
        query.get("cursor"),
        stock.export_limit(query.get("limit")),
        adapters.shop().cipher(merchant),
        adapters.stock(),
        adapters.ops(),
        utcnow(),
        str(router.current_event.raw_event.get("requestContext", {}).get("requestId", "")),
    )
    # Who, which product, how many: never the codes.
    logger.info(
        "stock exported",
        extra={"merchant_id": merchant, "product_id": product_id, "count": len(page.codes)},
    )
    headers = {"Cache-Control": "no-store"}
    if page.next:
        headers["Next-Cursor"] = page.next
    return Response(
        status_code=200,
        content_type="text/plain; charset=utf-8",
        body="".join(f"{code}\n" for code in page.codes),
        headers=headers,
    )
