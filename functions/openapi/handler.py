"""GET /openapi.json: the OpenAPI 3.1 document of every HTTP route, generated from the handlers'
own routes, models and parameters (Powertools, each resolver with `enable_validation`)."""

import json
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.typing import LambdaContext

# Imported at load (Lambda's init), as their own functions import them: only their routes are used.
from functions.merchant.handler import app as merchant
from functions.storefront.handler import app as storefront
from functions.webhook.handler import app as webhook
from shared import observability
from shared.http import documented, install_error_handlers

logger = Logger(service="openapi")
tracer = observability.tracer("openapi")
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app, logger)

DESCRIPTION = (
    "Instant delivery of digital goods. Money is {amount (integer minor units), currency}; times are "
    'RFC 3339; every error is {"error": {"code", "message"}}. The contract: API.md.'
)


def resolvers() -> list[APIGatewayHttpResolver]:
    """Every function's resolver that serves HTTP routes, this one included."""
    return [storefront, merchant, webhook, app]


def _plain(schema: Any) -> dict[str, Any]:
    return schema.model_dump(mode="json", by_alias=True, exclude_none=True)


@cache
def document() -> dict[str, Any]:
    merged = OpenAPIMerge(
        title="miaofa",
        version="1",
        description=DESCRIPTION,
        security_schemes={
            "merchantKey": HTTPBearer(description="a merchant API key, mk_live_… or mk_test_…")
        },
        on_conflict="error",
    )
    named: dict[str, Any] = {}
    for resolver in resolvers():
        part = _plain(resolver.get_openapi_schema())
        for name, definition in part.get("components", {}).get("schemas", {}).items():
            if named.setdefault(name, definition) != definition:  # the merge would keep one silently
                raise ValueError(f"two different OpenAPI schemas are named {name}")
        merged.add_schema(part)
    schema: dict[str, Any] = json.loads(merged.get_openapi_json_schema())
    # Powertools' own validation-error schemas: never answered here (errors have the one shape).
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    return schema


@app.get(
    "/openapi.json",
    summary="This document",
    tags=["meta"],
    responses=documented(200, "the OpenAPI 3.1 document", media="application/json"),
)
def openapi() -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps(document()),
        headers={"Cache-Control": "public, max-age=300"},
    )


@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
