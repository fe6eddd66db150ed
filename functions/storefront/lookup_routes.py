"""Storefront routes: an order look-up by e-mail."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.storefront.lookup import LookupRequest, request_lookup
from functions.storefront.routing import answer, client_address, throttle
from functions.storefront.schemas import LookupAccepted
from shared import adapters
from shared.http import documented
from shared.settings import settings

router = Router()


@router.post(
    "/api/orders/lookup",
    summary="E-mail the address a magic link to each of its orders (always 202)",
    tags=["buyer"],
    status_code=202,
    responses=documented(
        202, "accepted, whether or not the address has orders", LookupAccepted, errors=[400, 415, 429]
    ),
)
def lookup_orders(request: Annotated[LookupRequest, Body()]) -> Response[str]:
    config = settings()
    throttle(router, "lookup", config.lookups_per_client_minute, config.lookup_burst_per_client)
    ports = adapters.ports()
    accepted = request_lookup(
        request,
        client_address(router),
        ports.limits,
        (config.lookups_per_email_hour, config.lookups_per_client_hour),
        now=int(ports.clock().timestamp()),
        queue=ports.notify,
    )
    return answer(202, accepted)
