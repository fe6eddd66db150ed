"""What every merchant route shares: the logger, and the merchant the authorizer vouched for."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from shared.errors import Unauthorized

logger = Logger(service="merchant")
MERCHANT_KEY: list[dict[str, list[str]]] = [
    {"merchantKey": []}
]  # every merchant route: the OpenAPI security requirement


def merchant_id(router: Router) -> str:
    """The calling merchant's id, from the authorizer's context (never from the request itself)."""
    event = APIGatewayProxyEventV2(router.current_event.raw_event)
    context = event.request_context.authorizer.get_lambda or {}
    found = context.get("merchant_id")
    if not found:
        raise Unauthorized("a merchant API key is required")
    return str(found)
