"""Merchant routes: a product's stock (import, levels)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.merchant.catalog import owned_product, parse_codes
from functions.merchant.routing import logger, merchant_id
from shared import adapters
from shared.http import json_response, text_body

router = Router()


@router.post("/merchant/products/<product_id>/stock")
def post_stock(product_id: str) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.shop())
    content_type = router.current_event.headers.get("content-type", "text/plain")
    parsed = parse_codes(text_body(router.current_event), content_type)
    stored = adapters.stock().add_codes(
        product.product_id, product.shards, parsed.codes, adapters.shop().cipher(merchant)
    )
    duplicates = sorted(parsed.duplicate_lines + stored.duplicate_lines)
    problems = [p.model_dump() for p in parsed.rejected] + [
        {"line": line, "reason": "duplicate"} for line in duplicates
    ]
    logger.info("stock imported", extra={"product_id": product_id, "added": stored.added})
    return json_response(
        200,
        {
            "added": stored.added,
            "duplicates": len(duplicates),
            "rejected": len(parsed.rejected),
            "problems": sorted(problems, key=lambda p: p["line"]),
        },
    )


@router.get("/merchant/products/<product_id>/stock")
def get_stock(product_id: str) -> Response[str]:
    product = owned_product(merchant_id(router), product_id, adapters.shop())
    levels = adapters.stock().levels(product.product_id, product.shards)
    return json_response(200, levels.model_dump())
