"""Merchant API behind the API-key authorizer: one resolver, one router per area of the shop."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.merchant import (
    fulfil_routes,
    license_routes,
    order_routes,
    product_routes,
    risk_routes,
    shop_routes,
    stock_routes,
    upstream_routes,
    webhook_routes,
)
from functions.merchant.routing import logger
from shared import observability
from shared.http import install_error_handlers

tracer = observability.tracer("merchant")
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app, logger)
app.configure_openapi(
    title="miaofa merchant API",
    security_schemes={"merchantKey": HTTPBearer(description="a merchant API key, mk_live_… or mk_test_…")},
)
for area in (
    product_routes,
    stock_routes,
    order_routes,
    fulfil_routes,
    upstream_routes,
    webhook_routes,
    shop_routes,
    risk_routes,
    license_routes,
):
    app.include_router(area.router)


@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
