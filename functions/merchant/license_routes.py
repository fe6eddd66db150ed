"""Merchant routes: the merchant's licenses (an order's, one with its activations), revoking,
reinstating and reissuing one, and the license signing keys: rotating them and retiring one that
leaked (docs/licenses.md "Merchant API")."""

from datetime import datetime
from typing import Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.orders import owned_order
from functions.merchant.reissue import reissue_license
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from shared import adapters
from shared.errors import Invalid, NotFound
from shared.http import (
    documented,
    json_response,
    json_text,
    parse_json,
    query_parameters,
    request_body,
    validate,
)
from shared.ids import is_id
from shared.licenses import Keyring
from shared.licensing import LicenseRecord, order_license_ids

router = Router()
MACHINE_SHOWN = 12  # of a machine's hash: enough to tell machines apart; the machine's name is never kept


class Activation(BaseModel):
    machine: str = Field(description="the start of the machine's hash (the machine's own name is never kept)")
    activated_at: datetime


class LicenseView(BaseModel):
    license_id: str
    order_id: str
    product_id: str
    unit: int
    status: Literal["active", "revoked"]
    entitlements: list[str]
    max_machines: int | None
    issued_at: datetime
    expires_at: datetime | None
    kid: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    activations: list[Activation]


class LicenseList(BaseModel):
    licenses: list[LicenseView]


class LicenseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64, description="the order whose licenses to list")


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


class KeyView(BaseModel):
    kty: str
    crv: str
    kid: str
    x: str
    use: str
    alg: str


class RetiredKey(BaseModel):
    kid: str
    retired_at: datetime


class LicenseKeys(BaseModel):
    current: str = Field(description="the key id new licenses and activations are signed with")
    keys: list[KeyView] = Field(description="every published key, oldest first (the JWK Set's keys)")
    retired: list[RetiredKey] = Field(
        description="keys you retired, oldest first: what they signed no longer verifies"
    )
    url: str = Field(description="where the JWK Set is published for your software")


def _view(record: LicenseRecord) -> LicenseView:
    return LicenseView(
        license_id=record.license_id,
        order_id=record.order_id,
        product_id=record.product_id,
        unit=record.unit,
        status=record.status,
        entitlements=list(record.entitlements),
        max_machines=record.max_machines,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        kid=record.kid,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        revoked_reason=record.revoked_reason,
        activations=[
            Activation(machine=machine[:MACHINE_SHOWN], activated_at=when)
            for machine, when in sorted(record.machines.items(), key=lambda item: item[1])
        ],
    )


def _owned(merchant: str, license_id: str) -> LicenseRecord:
    """The merchant's own license; another merchant's is indistinguishable from a missing one."""
    record = adapters.licenses().get(license_id) if is_id(license_id, "lic") else None
    if record is None or record.merchant_id != merchant:
        raise NotFound("no such license", code="license_not_found")
    return record


def _keys_body(merchant: str, ring: Keyring) -> dict:
    from shared.settings import settings

    url = f"{settings().public_base_url.rstrip('/')}/api/licenses/keys/{merchant}"
    retired = [
        {"kid": kid, "retired_at": at} for kid, at in adapters.license_keys().retired(merchant).items()
    ]
    return LicenseKeys.model_validate(
        {"current": ring.current, "keys": ring.jwks()["keys"], "retired": retired, "url": url}
    ).model_dump(mode="json")


@router.get(
    "/merchant/licenses",
    summary="An order's licenses",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=query_parameters(LicenseQuery),
    responses=documented(
        200, "the order's licenses (none if it has none)", LicenseList, errors=[401, 403, 404]
    ),
)
def get_licenses() -> Response[str]:
    given = {k: v for k, v in (router.current_event.query_string_parameters or {}).items() if v != ""}
    unknown = sorted(set(given) - {"order_id"})
    if unknown:
        raise Invalid(f"unknown query parameter '{unknown[0][:40]}'", code="unknown_parameter")
    query = validate(LicenseQuery, given)
    order = owned_order(merchant_id(router), query.order_id, adapters.orders())
    records = adapters.licenses().many(order_license_ids(order))
    return json_response(200, LicenseList(licenses=[_view(r) for r in records]).model_dump(mode="json"))


@router.get(
    "/merchant/licenses/<license_id>",
    summary="A license: its status and activations",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the license", LicenseView, errors=[401, 403, 404]),
)
def get_license(license_id: str) -> Response[str]:
    return json_response(200, _view(_owned(merchant_id(router), license_id)).model_dump(mode="json"))


def _reason() -> str:
    raw = json_text(router.current_event) if router.current_event.body else ""
    return validate(RevokeBody, parse_json(raw) if raw.strip() else {}).reason


@router.post(
    "/merchant/licenses/<license_id>/revoke",
    summary="Revoke a license: it no longer activates, and validates as revoked",
    description="Sent again, changes nothing (the first revocation's reason stays).",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("an optional reason", RevokeBody),
    responses=documented(200, "revoked", LicenseView, errors=[400, 401, 403, 404, 415]),
)
def post_revoke(license_id: str) -> Response[str]:
    merchant = merchant_id(router)
    reason = _reason()
    record = _owned(merchant, license_id)
    revoked = adapters.licenses().revoke(
        record.license_id, "merchant", reason or "revoked by the merchant", adapters.ports().clock()
    )
    if revoked is None:
        raise NotFound("no such license", code="license_not_found")
    logger.info("license revoked", extra={"license_id": license_id})
    return json_response(200, _view(revoked).model_dump(mode="json"))


@router.post(
    "/merchant/licenses/<license_id>/reinstate",
    summary="Reinstate a revoked license (its activations as they were)",
    description="Sent again, changes nothing.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("no body needed", RevokeBody),
    responses=documented(200, "active", LicenseView, errors=[400, 401, 403, 404, 415]),
)
def post_reinstate(license_id: str) -> Response[str]:
    merchant = merchant_id(router)
    _reason()
    record = _owned(merchant, license_id)
    reinstated = adapters.licenses().reinstate(record.license_id)
    if reinstated is None:
        raise NotFound("no such license", code="license_not_found")
    logger.info("license reinstated", extra={"license_id": license_id})
    return json_response(200, _view(reinstated).model_dump(mode="json"))


@router.post(
    "/merchant/licenses/<license_id>/reissue",
    summary="Sign a license again under your current key; the buyer's order page shows the new text",
    description="For licenses signed by a key you retire (it leaked). The license keeps its id, grants, "
    "expiry and activations. Sent again, changes nothing.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "reissued", LicenseView, errors=[401, 403, 404, 409, 410]),
)
def post_reissue(license_id: str) -> Response[str]:
    ports = adapters.ports()
    record = reissue_license(merchant_id(router), license_id, ports, ports.clock())
    logger.info("license reissued", extra={"license_id": record.license_id, "kid": record.kid})
    return json_response(200, _view(record).model_dump(mode="json"))


@router.get(
    "/merchant/license-keys",
    summary="Your license signing keys (made on first use)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the keys, and where they are published", LicenseKeys, errors=[401, 403]),
)
def get_license_keys() -> Response[str]:
    merchant = merchant_id(router)
    keys = adapters.license_keys()  # read now: the merchant sees a rotation or retirement at once
    return json_response(
        200, _keys_body(merchant, keys.keyring(merchant, fresh=True) or keys.signing(merchant))
    )


@router.post(
    "/merchant/license-keys/rotate",
    summary="A fresh signing key: licenses signed before still verify (the old keys stay published)",
    description="Each call makes one more key.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "rotated", LicenseKeys, errors=[401, 403, 409]),
)
def post_rotate() -> Response[str]:
    merchant = merchant_id(router)
    ring = adapters.license_keys().rotate(merchant)
    logger.info("license keys rotated", extra={"kid": ring.current})
    return json_response(200, _keys_body(merchant, ring))


@router.post(
    "/merchant/license-keys/<kid>/retire",
    summary="Retire a key that leaked: what it signed stops verifying (reissue the licenses you keep)",
    description="Only a rotated-out key (rotate first), once every process has seen the rotation (409 "
    "license_key_recent with Retry-After until then: 32 s after it). Sent again, changes nothing.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "retired", LicenseKeys, errors=[401, 403, 404, 409]),
)
def post_retire(kid: str) -> Response[str]:
    merchant = merchant_id(router)
    keys = adapters.license_keys()
    ring = keys.retire(merchant, kid, adapters.ports().clock())
    logger.info("license key retired", extra={"kid": kid})
    return json_response(200, _keys_body(merchant, ring))
