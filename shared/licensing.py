"""Licenses as the shop keeps them (docs/licenses.md "The store"): one record per license issued, its
status (active or revoked, with who and why) and the machines activated on it; and the rules every
function shares: a license's id for an order's unit, the machine's hash, and revocation on refund.

The signed license itself (what it grants, checkable offline) is shared/licenses/; this is what can
only be checked online: revocation and activation counts."""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from shared.errors import Busy, DomainError, NotFound, StateConflict
from shared.licenses import Keyring, LicensePayload, sign_license
from shared.orders import Order

logger = logging.getLogger(__name__)

LicenseStatus = Literal["active", "revoked"]
# A license without a limit still keeps its machines on its one item (400 KB): past this many it
# refuses more, as if its limit were reached (docs/licenses.md "Limits").
MACHINES_PER_ITEM = 5000


class LicenseRevoked(DomainError):
    """A revoked license (refunded, or revoked by its merchant): activation refused."""

    status, code = 410, "license_revoked"


class ActivationLimit(DomainError):
    """Every machine the license allows is activated: deactivate one first."""

    status, code = 409, "activation_limit"


class LicensesNotRevoked(Busy):
    """A refunded order's license could not be revoked (the store throttled, say): the step that must
    revoke it before the order is REFUNDED is retried."""


class LicenseUnknown(NotFound):
    """A license whose signature verifies but that the shop has no record of (or not this merchant's)."""

    code = "license_not_found"


class LicenseKeyUnknown(NotFound):
    """A key id the merchant never had (another merchant's is indistinguishable from a missing one)."""

    code = "license_key_not_found"


class LicenseKeyCurrent(StateConflict):
    """The key signs the merchant's licenses now: it cannot be retired before a rotation."""

    code = "license_key_current"


class LicenseKeyRecent(StateConflict):
    """The keys were rotated too recently: a process may still sign with the key rotated out."""

    code = "license_key_recent"


@dataclass(frozen=True)
class LicenseRecord:
    license_id: str
    merchant_id: str
    product_id: str
    order_id: str
    unit: int  # which of the order's units (0-based)
    entitlements: tuple[str, ...]
    max_machines: int | None
    issued_at: datetime
    expires_at: datetime | None
    kid: str  # the key it was (last) signed with
    prefix: str
    status: LicenseStatus = "active"
    revoked_at: datetime | None = None
    revoked_by: str | None = None  # "merchant", "refund"
    revoked_reason: str | None = None
    machines: dict[str, datetime] = field(default_factory=dict)  # machine hash -> first activated

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class LicenseRecords(Protocol):
    """The licenses table (shared/store/licenses.py)."""

    def put(self, record: LicenseRecord) -> LicenseRecord:
        """Record a license once; a put of the same (order, unit) again returns the one recorded."""
        ...

    def get(self, license_id: str) -> LicenseRecord | None: ...

    def many(self, license_ids: list[str]) -> list[LicenseRecord]: ...

    def resigned(self, license_id: str, kid: str) -> None:
        """The license was signed again under `kid` (a retried delivery after a key rotation)."""
        ...

    def revoke(self, license_id: str, by: str, reason: str, now: datetime) -> LicenseRecord | None: ...

    def reinstate(self, license_id: str) -> LicenseRecord | None: ...


def signed_text(record: LicenseRecord, ring: Keyring) -> str:
    """The record's license, signed with the keyring's current key (the same text for the same key:
    Ed25519 signatures are deterministic)."""
    kid, key = ring.signing_key()
    payload = LicensePayload(
        license_id=record.license_id,
        merchant_id=record.merchant_id,
        product_id=record.product_id,
        order_id=record.order_id,
        entitlements=record.entitlements,
        max_machines=record.max_machines,
        expires_at=record.expires_at,
        issued_at=record.issued_at,
    )
    return sign_license(payload, key, kid, record.prefix)


def license_id_for(order_id: str, unit: int) -> str:
    """The license of the order's `unit`: the same on every attempt to deliver the order, so a retried
    delivery issues the same licenses (the same texts: Ed25519 signatures are deterministic)."""
    return "lic_" + hashlib.sha256(f"miaofa-license:{order_id}:{unit}".encode()).hexdigest()[:20]


def machine_hash(license_id: str, machine: str) -> str:
    """How a machine is kept: a hash, so the machine's own name is never stored nor shown."""
    return hashlib.sha256(f"{license_id}\0{machine}".encode()).hexdigest()[:32]


def order_license_ids(order: Order) -> list[str]:
    """The licenses an order was delivered with (its `order.delivered` entries' `licenses`)."""
    found: list[str] = []
    for entry in order.history:
        if entry.type == "order.delivered":
            for license_id in entry.data.get("licenses") or []:
                if isinstance(license_id, str) and license_id not in found:
                    found.append(license_id)
    return found


def revoke_order_licenses(
    order: Order, records: LicenseRecords | None, now: datetime, reason: str, required: bool = False
) -> int:
    """Revoke the licenses of a refunded (or refunding) order: each one conditional write, idempotent.
    A failure is logged and, if `required`, raised once every license was tried (the caller's step is
    retried); else never raised. Returns how many are revoked now."""
    license_ids = order_license_ids(order)
    if not license_ids or records is None:
        return 0
    revoked, failed = 0, None
    for license_id in license_ids:
        try:
            if records.revoke(license_id, "refund", reason, now) is not None:
                revoked += 1
        except Exception as error:
            failed = error
            logger.error(
                "license not revoked",
                extra={"order_id": order.order_id, "license_id": license_id, "error": type(error).__name__},
            )
    if failed is not None and required:
        raise LicensesNotRevoked(f"order {order.order_id}: a license could not be revoked; retry") from failed
    return revoked


class LicenseKeys(Protocol):
    """Merchants' license signing keys (shared/store/license_keys.py)."""

    def signing(self, merchant_id: str) -> Keyring:
        """The merchant's keyring to sign with, made (one fresh key) if it has none."""
        ...

    def keyring(self, merchant_id: str, fresh: bool = False) -> Keyring | None:
        """The merchant's keyring (None: none yet), as this process kept it unless `fresh`."""
        ...
