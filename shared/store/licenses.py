"""The licenses table: one item per license, `lic#<license_id>` (docs/licenses.md "The store").

The item holds what the license says (merchant, product, order and unit, entitlements, max machines,
expiry, the key id it was signed with), its status (active / revoked, with who, why and when), and
`machines`, a map of the machines activated on it: the machine's hash -> when it was first activated.

Exact limits under concurrency, one conditional write per activation: activating sets
`machines.<hash>` under the condition `status = active AND (attribute_exists(machines.<hash>) OR
size(machines) < max)`. DynamoDB applies writes to one item one at a time, so however many activate at
once, no more than `max` distinct machines get in; the same machine again (or the SDK's retry of a
write whose answer was lost) passes by its own entry and counts once. Deactivating removes the entry.
Each license is its own partition: no hot key whatever the number of licenses.
"""

import json
from datetime import UTC, datetime

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.models import Model

from shared.errors import IntegrityViolation
from shared.licensing import (
    MACHINES_PER_ITEM,
    ActivationLimit,
    LicenseRecord,
    LicenseRevoked,
    LicenseUnknown,
)
from shared.store.errors import condition_failed

REASON_LENGTH = 200


class LicenseItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    merchant_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    order_id = UnicodeAttribute()
    unit = NumberAttribute()
    entitlements = UnicodeAttribute()  # JSON list
    max_machines = NumberAttribute()  # 0: no limit
    issued_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute(null=True)
    kid = UnicodeAttribute()
    prefix = UnicodeAttribute()
    status = UnicodeAttribute()  # active | revoked
    revoked_at = UTCDateTimeAttribute(null=True)
    revoked_by = UnicodeAttribute(null=True)
    revoked_reason = UnicodeAttribute(null=True)
    machines: MapAttribute = MapAttribute(
        default=dict
    )  # machine hash -> Unix seconds of its first activation


def _key(license_id: str) -> str:
    return f"lic#{license_id}"


class LicenseStore:
    def __init__(self, table: str | None = None) -> None:
        if table is None:
            from shared.settings import settings

            table = settings().licenses_table
        LicenseItem.Meta.table_name = table

    def put(self, record: LicenseRecord) -> LicenseRecord:
        """Record a license once (a conditional put); if it is there already, the one recorded is
        returned when it is the same order's same unit (a retried delivery, or this put retried by the
        SDK after its answer was lost), else IntegrityViolation."""
        item = _to_item(record)
        try:
            item.save(condition=LicenseItem.pk.does_not_exist())
            return record
        except PutError as error:
            if not condition_failed(error):
                raise
        found = self.get(record.license_id)
        if found is None or (found.order_id, found.unit) != (record.order_id, record.unit):
            raise IntegrityViolation(f"license {record.license_id} is recorded for another order's unit")
        return found

    def get(self, license_id: str) -> LicenseRecord | None:
        """The license as recorded (a consistent read)."""
        try:
            return _to_record(LicenseItem.get(_key(license_id), consistent_read=True))
        except LicenseItem.DoesNotExist:
            return None

    def many(self, license_ids: list[str]) -> list[LicenseRecord]:
        """The licenses recorded among `license_ids`, in their order (consistent reads)."""
        found: dict[str, LicenseRecord] = {}
        for start in range(0, len(license_ids), 100):
            keys = [_key(i) for i in license_ids[start : start + 100]]
            for item in LicenseItem.batch_get(keys, consistent_read=True):
                record = _to_record(item)
                found[record.license_id] = record
        return [found[i] for i in license_ids if i in found]

    def resigned(self, license_id: str, kid: str) -> None:
        LicenseItem(pk=_key(license_id)).update(
            actions=[LicenseItem.kid.set(kid)], condition=LicenseItem.pk.exists()
        )

    def activate(
        self, license_id: str, machine: str, now: datetime, max_machines: int | None
    ) -> LicenseRecord:
        """The machine (its hash) activated on the license in one conditional write; the license as it
        is after it. LicenseRevoked, ActivationLimit or LicenseUnknown if refused."""
        cap = min(max_machines or MACHINES_PER_ITEM, MACHINES_PER_ITEM)
        entry = LicenseItem.machines[machine]  # type: ignore[index]
        item = LicenseItem(pk=_key(license_id))
        try:
            item.update(
                actions=[entry.set(entry | int(now.timestamp()))],  # the first activation's time kept
                condition=LicenseItem.pk.exists()
                & (LicenseItem.status == "active")
                & (entry.exists() | (size(LicenseItem.machines) < cap)),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            raise self._refusal(license_id, machine) from None
        # The answer is the item after the write (ALL_NEW): no second read.
        return _to_record(item)

    def _refusal(self, license_id: str, machine: str) -> Exception:
        found = self.get(license_id)
        if found is None:
            return LicenseUnknown("the shop has no record of this license")
        if found.status != "active":
            return LicenseRevoked("this license was revoked: it cannot be activated")
        return ActivationLimit(
            f"every machine this license allows ({len(found.machines)}) is activated: deactivate one first"
        )

    def deactivate(self, license_id: str, machine: str) -> LicenseRecord:
        """The machine no longer counts against the license (no change if it was not activated)."""
        item = LicenseItem(pk=_key(license_id))
        try:
            item.update(
                actions=[LicenseItem.machines[machine].remove()],  # type: ignore[index]
                condition=LicenseItem.pk.exists(),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            raise LicenseUnknown("the shop has no record of this license") from None
        return _to_record(item)

    def revoke(self, license_id: str, by: str, reason: str, now: datetime) -> LicenseRecord | None:
        """The license revoked (None: no such license). Revoking a revoked license keeps who revoked it
        first and why: safe to repeat."""
        item = LicenseItem(pk=_key(license_id))
        try:
            item.update(
                actions=[
                    LicenseItem.status.set("revoked"),
                    LicenseItem.revoked_at.set(now),
                    LicenseItem.revoked_by.set(by),
                    LicenseItem.revoked_reason.set(reason[:REASON_LENGTH] or "revoked"),
                ],
                condition=LicenseItem.pk.exists() & (LicenseItem.status == "active"),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            return self.get(license_id)  # revoked already (or by this write, retried), or none
        return _to_record(item)

    def reinstate(self, license_id: str) -> LicenseRecord | None:
        """The license active again, its activations as they were (None: no such license)."""
        item = LicenseItem(pk=_key(license_id))
        try:
            item.update(
                actions=[
                    LicenseItem.status.set("active"),
                    LicenseItem.revoked_at.remove(),
                    LicenseItem.revoked_by.remove(),
                    LicenseItem.revoked_reason.remove(),
                ],
                condition=LicenseItem.pk.exists(),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            return None
        return _to_record(item)


def _to_item(record: LicenseRecord) -> LicenseItem:
    return LicenseItem(
        pk=_key(record.license_id),
        merchant_id=record.merchant_id,
        product_id=record.product_id,
        order_id=record.order_id,
        unit=record.unit,
        entitlements=json.dumps(list(record.entitlements)),
        max_machines=record.max_machines or 0,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        kid=record.kid,
        prefix=record.prefix,
        status=record.status,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        revoked_reason=record.revoked_reason,
        machines={},
    )


def _to_record(item: LicenseItem) -> LicenseRecord:
    machines = (
        item.machines.as_dict() if isinstance(item.machines, MapAttribute) else dict(item.machines or {})
    )
    return LicenseRecord(
        license_id=item.pk.removeprefix("lic#"),
        merchant_id=item.merchant_id,
        product_id=item.product_id,
        order_id=item.order_id,
        unit=int(item.unit),
        entitlements=tuple(json.loads(item.entitlements)),
        max_machines=int(item.max_machines) or None,
        issued_at=item.issued_at,
        expires_at=item.expires_at,
        kid=item.kid,
        prefix=item.prefix,
        status="revoked" if item.status == "revoked" else "active",
        revoked_at=item.revoked_at,
        revoked_by=item.revoked_by,
        revoked_reason=item.revoked_reason,
        machines={str(k): datetime.fromtimestamp(int(v), UTC) for k, v in machines.items()},
    )
