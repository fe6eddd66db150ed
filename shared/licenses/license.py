"""License keys: what an order's license grants, signed with the merchant's Ed25519 key, checkable
offline. Format 1, byte by byte, in docs/licenses.md; the text around it in shared/licenses/text.py."""

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.errors import Invalid
from shared.ids import new_id
from shared.licenses import text
from shared.licenses.errors import Expired, Malformed, WrongMerchant, WrongProduct
from shared.licenses.keyring import Keyring

LICENSE_FORMAT = 0x01
DEFAULT_PREFIX = "LIC"
ENTITLEMENT = re.compile(r"[A-Za-z0-9._:-]{1,32}")
MAX_ENTITLEMENTS = 16
MAX_MACHINES = 0xFFFF
LAST_SECOND = 0xFFFFFFFF  # 2106-02-07T06:28:15Z: a later format widens the times
LICENSE_ERROR = "invalid_license_terms"


def new_license_id() -> str:
    return new_id("lic")


@dataclass(frozen=True)
class LicensePayload:
    """What a license says. `max_machines` None: no limit; `expires_at` None: never. Times are whole
    seconds, UTC."""

    license_id: str
    merchant_id: str
    product_id: str
    order_id: str
    entitlements: tuple[str, ...]
    max_machines: int | None
    expires_at: datetime | None
    issued_at: datetime


@dataclass(frozen=True)
class License(LicensePayload):
    """A license that verified, with the key id it was signed under."""

    kid: str


def sign_license(
    payload: LicensePayload, private_key: Ed25519PrivateKey, kid: str, prefix: str = DEFAULT_PREFIX
) -> str:
    """The license key text, `<prefix>-<base32>`; 422 for terms the format cannot carry."""
    return text.encode(prefix, _layout(payload, kid), private_key)


def verify_license(
    license_text: str,
    keyring: Keyring,
    *,
    now: datetime,
    merchant_id: str | None = None,
    product_id: str | None = None,
) -> License:
    """The license, if its signature verifies under the key id it names, it has not expired at `now`,
    and it is for the merchant and product given (when given). Raises the LicenseRefused kind that
    says why not (shared/licenses/errors.py)."""
    signed = text.decode(license_text, "license")
    kid = signed.kid(LICENSE_FORMAT, "license")
    signed.verify(keyring.public_key(kid), "license")
    found = _parse(signed.payload)
    if merchant_id is not None and found.merchant_id != merchant_id:
        raise WrongMerchant(f"the license is for merchant {found.merchant_id}, not {merchant_id}")
    if product_id is not None and found.product_id != product_id:
        raise WrongProduct(f"the license is for product {found.product_id}, not {product_id}")
    if found.expires_at is not None and now >= found.expires_at:
        raise Expired(f"the license expired at {found.expires_at.isoformat()}")
    return found


def _layout(payload: LicensePayload, kid: str) -> bytes:
    try:
        ids = b"".join(
            text.id_bytes(value, prefix)
            for value, prefix in (
                (payload.license_id, "lic"),
                (payload.merchant_id, "mer"),
                (payload.product_id, "prd"),
                (payload.order_id, "ord"),
            )
        )
        kid_raw = text.kid_bytes(kid)
    except ValueError as error:
        raise Invalid(f"the license cannot be signed: {error}", code=LICENSE_ERROR) from None
    entitlements = payload.entitlements
    if len(entitlements) > MAX_ENTITLEMENTS or len(set(entitlements)) != len(entitlements):
        raise Invalid(f"a license has at most {MAX_ENTITLEMENTS} entitlements, each once", code=LICENSE_ERROR)
    for entitlement in entitlements:
        if not ENTITLEMENT.fullmatch(entitlement):
            raise Invalid(f"entitlement {entitlement!r}: 1-32 of A-Z a-z 0-9 . _ : -", code=LICENSE_ERROR)
    if payload.max_machines is not None and not 1 <= payload.max_machines <= MAX_MACHINES:
        raise Invalid(f"max machines is 1-{MAX_MACHINES}, or none for no limit", code=LICENSE_ERROR)
    issued = _seconds(payload.issued_at, "issued at")
    expires = 0 if payload.expires_at is None else _seconds(payload.expires_at, "expiry")
    if payload.expires_at is not None and expires <= issued:
        raise Invalid("a license expires after it is issued", code=LICENSE_ERROR)
    listed = b"".join(bytes([len(e)]) + e.encode("ascii") for e in entitlements)
    return (
        bytes([LICENSE_FORMAT])
        + kid_raw
        + ids
        + struct.pack(">IIHB", issued, expires, payload.max_machines or 0, len(entitlements))
        + listed
    )


def _parse(payload: bytes) -> License:
    reader = text.Reader(payload, "license")
    if reader.u8() != LICENSE_FORMAT:
        raise Malformed("not a license")
    kid = reader.take(4).hex()
    license_id, merchant_id, product_id, order_id = (reader.id(p) for p in ("lic", "mer", "prd", "ord"))
    issued, expires, machines, count = reader.u32(), reader.u32(), reader.u16(), reader.u8()
    if count > MAX_ENTITLEMENTS:
        raise Malformed("the license holds more entitlements than the format allows")
    entitlements = tuple(reader.ascii(reader.u8(), ENTITLEMENT) for _ in range(count))
    reader.end()
    if expires and expires <= issued:
        raise Malformed("the license expires before it was issued")
    return License(
        license_id=license_id,
        merchant_id=merchant_id,
        product_id=product_id,
        order_id=order_id,
        entitlements=entitlements,
        max_machines=machines or None,
        expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
        issued_at=datetime.fromtimestamp(issued, UTC),
        kid=kid,
    )


def _seconds(moment: datetime, what: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime")
    seconds = int(moment.timestamp())
    if not 0 < seconds <= LAST_SECOND:
        raise Invalid(f"{what} is outside 1970-2106, which this format holds", code=LICENSE_ERROR)
    return seconds
