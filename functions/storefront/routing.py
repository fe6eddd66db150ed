"""What every storefront route shares: the logger, the buyer's address and its rate limits, the
products buyers may see, and JSON answers made from the routes' response models."""

import time
from typing import cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from shared import adapters, observability
from shared.clients import client_key
from shared.errors import NotFound, TooMany
from shared.http import json_response
from shared.ids import is_id
from shared.products import Product
from shared.store.rate import Bucket

logger = Logger(service="storefront")


def request(router: Router) -> APIGatewayProxyEventV2:
    """The request being answered, as the HTTP API resolver parsed it (a Router types it loosely)."""
    return cast(APIGatewayProxyEventV2, router.current_event)


def client_address(router: Router) -> str:
    """The buyer's address as API Gateway saw it (never a header the buyer could set)."""
    return request(router).request_context.http.source_ip


def throttle(router: Router, group: str, per_minute: int, burst: int) -> None:
    """429 for a client past its token bucket on these routes (shared/store/rate.py)."""
    client = client_key(client_address(router))
    try:
        adapters.rates().admit(group, client, Bucket(per_minute, burst), time.time())
    except TooMany:
        observability.metrics("storefront").add_metric(
            name="ClientsThrottled", unit=MetricUnit.Count, value=1
        )
        raise


def on_sale(product_id: str) -> Product:
    """An active product, as buyers may see it; else 404."""
    product = adapters.products().recent_product(product_id) if is_id(product_id, "prd") else None
    if product is None or not product.active:
        raise NotFound("no such product", code="product_not_found")
    return product


def answer(status: int, body: BaseModel, *, exclude_none: bool = False) -> Response[str]:
    """A JSON answer whose body is the route's response model, the one its OpenAPI entry names."""
    return json_response(status, body.model_dump(mode="json", exclude_none=exclude_none))
