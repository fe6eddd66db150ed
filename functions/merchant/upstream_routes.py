"""Merchant routes: the merchant's upstreams, which credit its top-up products (docs/topup.md)."""

import re
import secrets
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from shared import adapters
from shared.errors import Invalid, NotFound
from shared.http import documented, json_response
from shared.notify import MAX_URL_LENGTH
from shared.orders import utcnow
from shared.settings import settings
from shared.store.upstreams import UpstreamConfig
from shared.upstream import check_base_url

router = Router()
NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"  # as a product's topup.upstream names it


class UpstreamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)  # the base: {url}/topups
    # The supplier's, if it issued one; else the shop makes one and shows it in this answer only.
    secret: str | None = Field(default=None, min_length=32, max_length=200, pattern=r"^[\x21-\x7e]+$")
    # Bounded so that one delivery — a status question (retried once) and a request — fits the deliver
    # function's 30 s: 2 × (3 + 6) + 0.2 + (3 + 6) = 27.2 s at most (docs/topup.md "Time").
    connect_timeout_ms: int = Field(default=2000, strict=True, ge=100, le=3000)
    read_timeout_ms: int = Field(default=5000, strict=True, ge=100, le=6000)


class Upstream(BaseModel):
    name: str
    url: str
    connect_timeout_ms: int
    read_timeout_ms: int


class UpstreamSet(Upstream):
    secret: str | None = None  # only when the shop made it: shown in this answer only


def _view(config: UpstreamConfig) -> dict:
    return Upstream.model_validate(config, from_attributes=True).model_dump()


@router.put(
    "/merchant/upstreams/<name>",
    summary="Register (or replace) an upstream that credits your top-up products",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        200, "the upstream (its secret only if the shop made it)", UpstreamSet, errors=[400, 401, 403, 415]
    ),
)
def put_upstream(name: str, body: Annotated[UpstreamBody, Body()]) -> Response[str]:
    merchant = merchant_id(router)
    if not re.fullmatch(NAME, name):
        raise Invalid(
            "name: 1 to 32 of a-z, 0-9, '_' and '-', starting with a letter or digit", code="invalid_name"
        )
    url = check_base_url(body.url, local_mode=settings().local_mode)
    secret = body.secret or "upsec_" + secrets.token_urlsafe(32)
    config = UpstreamConfig(
        merchant_id=merchant,
        name=name,
        url=url,
        secret=SecretStr(secret),
        connect_timeout_ms=body.connect_timeout_ms,
        read_timeout_ms=body.read_timeout_ms,
        updated_at=utcnow(),
    )
    adapters.upstreams().put_upstream(config)
    logger.info("upstream set", extra={"upstream": name})  # not the URL: it may carry a token
    return json_response(200, {**_view(config), **({} if body.secret else {"secret": secret})})


@router.get(
    "/merchant/upstreams/<name>",
    summary="An upstream (never its secret)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the upstream", Upstream, errors=[401, 403, 404]),
)
def get_upstream(name: str) -> Response[str]:
    config = adapters.upstreams().upstream(merchant_id(router), name)
    if config is None:
        raise NotFound("no such upstream", code="upstream_not_found")
    return json_response(200, _view(config))


@router.delete(
    "/merchant/upstreams/<name>",
    summary="Remove an upstream (its products' orders then wait, and follow their policy)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(204, "removed (also when there was none)", errors=[401, 403]),
)
def delete_upstream(name: str) -> Response[str]:
    adapters.upstreams().delete_upstream(merchant_id(router), name)
    return Response(status_code=204, body="")
