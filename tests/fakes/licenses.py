"""Licenses and merchants' license keys in memory, as shared/store/licenses.py and license_keys.py
keep them: a put that finds its own (order, unit) returns it, revoking twice keeps the first reason,
activations counted exactly (one dict per license, under a lock like one DynamoDB item)."""

import dataclasses
import threading
from datetime import datetime

from shared.errors import IntegrityViolation
from shared.licenses import Keyring
from shared.licensing import MACHINES_PER_ITEM, ActivationLimit, LicenseRecord, LicenseRevoked, LicenseUnknown
from tests.fakes.hooks import Hooked, hooked


class FakeLicenses(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, LicenseRecord] = {}
        self._lock = threading.Lock()

    @hooked
    def put(self, record: LicenseRecord) -> LicenseRecord:
        found = self.records.setdefault(record.license_id, record)
        if (found.order_id, found.unit) != (record.order_id, record.unit):
            raise IntegrityViolation(f"license {record.license_id} is recorded for another order's unit")
        return found

    @hooked
    def get(self, license_id: str) -> LicenseRecord | None:
        return self.records.get(license_id)

    @hooked
    def many(self, license_ids: list[str]) -> list[LicenseRecord]:
        return [self.records[i] for i in license_ids if i in self.records]

    @hooked
    def resigned(self, license_id: str, kid: str) -> None:
        self.records[license_id] = dataclasses.replace(self.records[license_id], kid=kid)

    @hooked
    def activate(
        self, license_id: str, machine: str, now: datetime, max_machines: int | None
    ) -> LicenseRecord:
        with self._lock:
            found = self.records.get(license_id)
            if found is None:
                raise LicenseUnknown("the shop has no record of this license")
            if found.status != "active":
                raise LicenseRevoked("this license was revoked: it cannot be activated")
            cap = min(max_machines or MACHINES_PER_ITEM, MACHINES_PER_ITEM)
            if machine not in found.machines and len(found.machines) >= cap:
                raise ActivationLimit("every machine this license allows is activated")
            found = dataclasses.replace(
                found, machines={**found.machines, machine: found.machines.get(machine, now)}
            )
            self.records[license_id] = found
            return found

    @hooked
    def deactivate(self, license_id: str, machine: str) -> LicenseRecord:
        with self._lock:
            found = self.records.get(license_id)
            if found is None:
                raise LicenseUnknown("the shop has no record of this license")
            found = dataclasses.replace(
                found, machines={k: v for k, v in found.machines.items() if k != machine}
            )
            self.records[license_id] = found
            return found

    @hooked
    def revoke(self, license_id: str, by: str, reason: str, now: datetime) -> LicenseRecord | None:
        found = self.records.get(license_id)
        if found is not None and found.status == "active":
            found = dataclasses.replace(
                found, status="revoked", revoked_at=now, revoked_by=by, revoked_reason=reason
            )
            self.records[license_id] = found
        return found

    @hooked
    def reinstate(self, license_id: str) -> LicenseRecord | None:
        found = self.records.get(license_id)
        if found is not None:
            found = dataclasses.replace(
                found, status="active", revoked_at=None, revoked_by=None, revoked_reason=None
            )
            self.records[license_id] = found
        return found


class FakeLicenseKeys(Hooked):
    """Each merchant's keyring, made on first need."""

    def __init__(self) -> None:
        super().__init__()
        self.rings: dict[str, Keyring] = {}

    @hooked
    def signing(self, merchant_id: str) -> Keyring:
        return self.rings.setdefault(merchant_id, Keyring.new())

    @hooked
    def keyring(self, merchant_id: str, fresh: bool = False) -> Keyring | None:
        return self.rings.get(merchant_id)

    def rotate(self, merchant_id: str) -> Keyring:
        self.rings[merchant_id] = self.signing(merchant_id).rotate()
        return self.rings[merchant_id]

    def retire(self, merchant_id: str, kid: str, now: datetime) -> Keyring:
        self.rings[merchant_id] = self.signing(merchant_id).retire(kid)
        return self.rings[merchant_id]
