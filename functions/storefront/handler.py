"""Storefront: the buyer API and the hosted pages; one resolver, one router per area."""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.storefront import license_routes, lookup_routes, order_routes, page_routes, product_routes
from functions.storefront.routing import logger
from shared import observability
from shared.http import install_error_handlers

tracer = observability.tracer("storefront")
metrics = observability.metrics("storefront")
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app, logger)
for area in (product_routes, order_routes, lookup_routes, page_routes, license_routes):
    app.include_router(area.router)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
