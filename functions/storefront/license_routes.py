"""Storefront routes: the public license API for the merchant's software (docs/licenses.md "Routes").
No authentication: a license is its own credential. Rate-limited per client address."""

import json
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.storefront import licenses
from functions.storefront.routing import answer, logger, throttle
from shared import adapters
from shared.http import documented
from shared.settings import settings

router = Router()
KEYS_MAX_AGE = 300  # seconds a client may keep the published keys; a rotation shows within it


def _throttled() -> None:
    config = settings()
    throttle(router, "license", config.license_calls_per_client_minute, config.license_call_burst_per_client)


@router.get(
    "/api/licenses/keys/<merchant_id>",
    summary="The shop's published license keys (a JWK Set of Ed25519 keys, RFC 8037)",
    tags=["licenses"],
    responses=documented(
        200, "the JWK Set, oldest key first; cacheable", media="application/json", errors=[404, 429]
    ),
)
def get_keys(merchant_id: str) -> Response[str]:
    _throttled()
    document = licenses.published_keys(merchant_id, adapters.license_keys())
    return Response(
        status_code=200,
        content_type="application/json",
        body=json.dumps(document),
        headers={
            "Cache-Control": f"public, max-age={KEYS_MAX_AGE}"
        },  # public data, unlike every other answer
    )


@router.post(
    "/api/licenses/activate",
    summary="Activate a license on a machine: a signed activation, or 409 activation_limit",
    tags=["licenses"],
    responses=documented(
        200,
        "activated (the same machine again counts once)",
        licenses.Activated,
        errors=[400, 404, 409, 410, 415, 429],
    ),
)
def activate(body: Annotated[licenses.MachineCall, Body()]) -> Response[str]:
    _throttled()
    ports = adapters.ports()
    activated = licenses.activate(
        body, adapters.license_keys(), adapters.licenses(), ports.clock(), settings().activation_days
    )
    logger.info("license activated", extra={"license_id": activated.license_id})
    return answer(200, activated)


@router.post(
    "/api/licenses/deactivate",
    summary="Deactivate a license on a machine (frees its place)",
    tags=["licenses"],
    responses=documented(
        200, "deactivated (or it was not active)", licenses.Activations, errors=[400, 404, 415, 429]
    ),
)
def deactivate(body: Annotated[licenses.MachineCall, Body()]) -> Response[str]:
    _throttled()
    done = licenses.deactivate(body, adapters.license_keys(), adapters.licenses(), adapters.ports().clock())
    logger.info("license deactivated", extra={"license_id": done.license_id})
    return answer(200, done)


@router.post(
    "/api/licenses/validate",
    summary="A license's status now: active, revoked, expired or unknown, and its activations",
    tags=["licenses"],
    responses=documented(200, "the license's status", licenses.Validity, errors=[400, 415, 429]),
)
def validate(body: Annotated[licenses.LicenseCall, Body()]) -> Response[str]:
    _throttled()
    validity = licenses.validate(body, adapters.license_keys(), adapters.licenses(), adapters.ports().clock())
    return answer(200, validity)
