"""Merchant API: products and stock, behind the API-key authorizer (merchant id from its context)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.catalog import ProductRequest, create_product, owned_product, parse_codes
from functions.merchant.refund import refund_order
from shared import adapters
from shared.errors import Unauthorized
from shared.http import install_error_handlers, json_response, parse_json, text_body, validate
from shared.orders import Status, utcnow
from shared.products import Product
from shared.refunds import refund_id_for

logger = Logger(service="merchant")
app = APIGatewayHttpResolver()
install_error_handlers(app, logger)


def _merchant_id() -> str:
    context = app.current_event.request_context.authorizer.get_lambda or {}
    merchant_id = context.get("merchant_id")
    if not merchant_id:
        raise Unauthorized("a merchant API key is required")
    return str(merchant_id)


def _product_body(product: Product) -> dict:
    body = product.model_dump(mode="json", exclude={"product_id", "merchant_id", "shards"})
    return {"id": product.product_id, **body}


@app.post("/merchant/products")
def post_product() -> Response[str]:
    request = validate(ProductRequest, parse_json(text_body(app.current_event)))
    product = create_product(_merchant_id(), request, adapters.shop(), adapters.stock(), now=utcnow())
    logger.info("product created", extra={"product_id": product.product_id})
    return json_response(201, _product_body(product))


@app.get("/merchant/products/<product_id>")
def get_product(product_id: str) -> Response[str]:
    return json_response(200, _product_body(owned_product(_merchant_id(), product_id, adapters.shop())))


@app.post("/merchant/products/<product_id>/stock")
def post_stock(product_id: str) -> Response[str]:
    merchant_id = _merchant_id()
    product = owned_product(merchant_id, product_id, adapters.shop())
    content_type = app.current_event.headers.get("content-type", "text/plain")
    parsed = parse_codes(text_body(app.current_event), content_type)
    stored = adapters.stock().add_codes(
        product.product_id, product.shards, parsed.codes, adapters.shop().cipher(merchant_id)
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


@app.get("/merchant/products/<product_id>/stock")
def get_stock(product_id: str) -> Response[str]:
    product = owned_product(_merchant_id(), product_id, adapters.shop())
    levels = adapters.stock().levels(product.product_id, product.shards)
    return json_response(200, levels.model_dump())


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


@app.post("/merchant/orders/<order_id>/refund")
def post_refund(order_id: str) -> Response[str]:
    merchant_id = _merchant_id()
    raw = text_body(app.current_event)
    body = validate(RefundBody, parse_json(raw) if raw.strip() else {})
    order = refund_order(merchant_id, order_id, body.reason, adapters.orders(), adapters.stock(), utcnow())
    logger.info("refund requested", extra={"order_id": order.order_id, "status": order.status.value})
    return json_response(
        200 if order.status == Status.REFUNDED else 202,
        {
            "order_id": order.order_id,
            "status": order.status.value,
            "refund_id": refund_id_for(order.order_id, order.refund_attempt),
        },
    )


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
