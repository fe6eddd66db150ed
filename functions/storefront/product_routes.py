"""Storefront routes: a product as buyers see it."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.storefront.routing import answer, on_sale
from functions.storefront.schemas import Delivery, PublicProduct
from shared import adapters
from shared.http import documented

router = Router()


@router.get(
    "/api/products/<product_id>",
    summary="A product as buyers see it",
    tags=["buyer"],
    responses=documented(200, "the product", PublicProduct, errors=[404]),
)
def get_product(product_id: str) -> Response[str]:
    product = on_sale(product_id)
    manual = product.manual.promise_minutes * 60 if product.manual is not None else None
    return answer(
        200,
        PublicProduct(
            id=product.product_id,
            name=product.name,
            description=product.description,
            price=product.price,
            available=adapters.recent_stock().left(product),
            delivery=Delivery(
                mode="manual" if manual is not None else "instant",
                eta_seconds=manual or 1,
                kind=product.delivery,
            ),
            min_per_order=product.min_per_order,
            max_per_order=product.max_per_order,
            price_tiers=list(product.price_tiers),
            buyer_input=list(product.buyer_input),
        ),
    )
