"""The public license API's use cases (docs/licenses.md "Routes"): the merchant's software activates,
deactivates and validates a license, and fetches the keys that verify licenses offline.

Every request's license is verified before the store is touched: its signature under the key its
merchant published (the merchant is named inside the license and is only trusted once the signature
verifies under that merchant's keys), so a forged or altered license costs one keyring read, cached,
and no write."""

from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import is_id
from shared.licenses import Keyring, License, Malformed, UnknownKey, sign_activation, verify_license
from shared.licenses.license import LICENSE_FORMAT
from shared.licenses.text import decode
from shared.licensing import LicenseRecord, LicenseUnknown, machine_hash

LICENSE_TEXT = 2048  # a license with 16 entitlements of 32 characters is under 1,000 characters
MERCHANT_AT = slice(15, 25)  # the merchant id's bytes in a license's payload (docs/licenses.md)
EPOCH = datetime.fromtimestamp(0, UTC)


class Keys(Protocol):
    def keyring(self, merchant_id: str, fresh: bool = False) -> Keyring | None: ...


class Records(Protocol):
    def get(self, license_id: str) -> LicenseRecord | None: ...

    def activate(
        self, license_id: str, machine: str, now: datetime, max_machines: int | None
    ) -> LicenseRecord: ...

    def deactivate(self, license_id: str, machine: str) -> LicenseRecord: ...


class LicenseCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    license: str = Field(min_length=1, max_length=LICENSE_TEXT, description="the license key, LIC-…")
    product_id: str | None = Field(
        default=None,
        pattern=r"^prd_[0-9a-f]{20}$",
        description="the product the software is for: a license of another product is refused (422)",
    )


class MachineCall(LicenseCall):
    machine: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="the machine's name, as the software names it: 1-128 printable ASCII, no spaces",
    )


class Activated(BaseModel):
    """A signed activation (`ACT-…`), which the software keeps and verifies offline until it ends."""

    activation: str
    license_id: str
    expires_at: datetime
    activations: int
    max_machines: int | None


class Activations(BaseModel):
    license_id: str
    activations: int
    max_machines: int | None


class Validity(BaseModel):
    """What the shop knows of a license now: `unknown` if it has no record of a license that verifies."""

    status: Literal["active", "revoked", "expired", "unknown"]
    license_id: str
    activations: int
    max_machines: int | None
    expires_at: datetime | None


def claimed_merchant(text: str) -> str:
    """The merchant a license names, read before its signature is checked: only to find whose keys
    to check it with (a license naming another merchant does not verify under that one's keys)."""
    signed = decode(text, "license")
    signed.kid(LICENSE_FORMAT, "license")
    if len(signed.payload) < MERCHANT_AT.stop:
        raise Malformed("the license was cut short")
    return f"mer_{signed.payload[MERCHANT_AT].hex()}"


def verified(text: str, keys: Keys, now: datetime, product_id: str | None, expiry: bool = True) -> License:
    """The license, if it verifies under its merchant's published keys (read again, consistently, when
    its key is not among those this process kept: a key made or rotated in since). Without `expiry`, an
    expired license is returned (its caller tells it expired)."""
    merchant = claimed_merchant(text)
    for fresh in (False, True):
        ring = keys.keyring(merchant, fresh=fresh)
        if ring is None:
            if fresh:
                raise UnknownKey("this license is signed by no key the shop has published")
            continue
        try:
            # verify_license refuses what expired at `now`; at the epoch nothing has.
            return verify_license(text, ring, now=now if expiry else EPOCH, product_id=product_id)
        except UnknownKey:
            if fresh:
                raise
    raise AssertionError("unreachable")


def activate(call: MachineCall, keys: Keys, records: Records, now: datetime, days: int) -> Activated:
    """The machine activated on the license (the same machine again counts once), and a signed
    activation until `days` from now or the license's expiry. LicenseRevoked, ActivationLimit,
    LicenseUnknown, or the license's own refusal (LicenseRefused)."""
    found = verified(call.license, keys, now, call.product_id)
    record = records.activate(
        found.license_id, machine_hash(found.license_id, call.machine), now, found.max_machines
    )
    ring = keys.keyring(found.merchant_id)
    assert ring is not None  # it verified the license just now
    kid, key = ring.signing_key()
    start = now.replace(microsecond=0)
    end = start + timedelta(days=days)
    if found.expires_at is not None:
        end = min(end, found.expires_at)
    return Activated(
        activation=sign_activation(found.license_id, call.machine, start, end, key, kid),
        license_id=found.license_id,
        expires_at=end,
        activations=len(record.machines),
        max_machines=found.max_machines,
    )


def deactivate(call: MachineCall, keys: Keys, records: Records, now: datetime) -> Activations:
    """The machine no longer counts against the license (also for an expired or revoked license)."""
    found = verified(call.license, keys, now, call.product_id, expiry=False)
    record = records.deactivate(found.license_id, machine_hash(found.license_id, call.machine))
    return Activations(
        license_id=found.license_id, activations=len(record.machines), max_machines=found.max_machines
    )


def validate(call: LicenseCall, keys: Keys, records: Records, now: datetime) -> Validity:
    """The license's status now (a consistent read): revoked, else expired, else unknown (no record of a
    license that verifies), else active."""
    found = verified(call.license, keys, now, call.product_id, expiry=False)
    record = records.get(found.license_id)
    status: Literal["active", "revoked", "expired", "unknown"]
    if record is not None and record.status == "revoked":
        status = "revoked"
    elif found.expires_at is not None and now >= found.expires_at:
        status = "expired"
    elif record is None:
        status = "unknown"
    else:
        status = "active"
    return Validity(
        status=status,
        license_id=found.license_id,
        activations=len(record.machines) if record is not None else 0,
        max_machines=found.max_machines,
        expires_at=found.expires_at,
    )


def published_keys(merchant_id: str, keys: Keys) -> dict:
    """The merchant's JWK Set; LicenseUnknown-style 404 for a merchant without keys."""
    ring = keys.keyring(merchant_id) if is_id(merchant_id, "mer") else None
    if ring is None:
        raise KeysNotFound("this shop has published no license keys")
    return ring.jwks()


class KeysNotFound(LicenseUnknown):
    code = "keys_not_found"


__all__ = ["activate", "deactivate", "published_keys", "validate"]
