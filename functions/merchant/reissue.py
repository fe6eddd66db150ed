"""A merchant signs one of its licenses again under its current key (docs/licenses.md "A key that
leaked"): after a key is retired, the buyers whose licenses it signed get them back, valid, on their
order page.

The license stays the same license (id, grants, machines, expiry); only its signature and key id change.
The order's sealed delivery is rewritten with the new text in the write that notes `license.reissued`
(conditional on the order's history), so a call that lost its answer, or two at once, reissue once:
the second finds the text in place (Ed25519 signatures are deterministic)."""

import dataclasses
from datetime import datetime

from shared.errors import IntegrityViolation, StateConflict
from shared.fulfilment import open_fulfilment, seal_fulfilment
from shared.ids import is_id
from shared.licensing import LicenseRecord, LicenseRevoked, LicenseUnknown, signed_text
from shared.orders import Status
from shared.ports import Ports

ROUNDS = 3  # the order changed under us (another note): read it again


def reissue_license(merchant_id: str, license_id: str, ports: Ports, now: datetime) -> LicenseRecord:
    """The license, signed again under the merchant's current key, its order's delivery showing the new
    text. LicenseUnknown (another merchant's too), LicenseRevoked (reinstate it first), StateConflict."""
    if ports.licenses is None or ports.license_keys is None:
        raise IntegrityViolation("this function has no license store")
    record = ports.licenses.get(license_id) if is_id(license_id, "lic") else None
    if record is None or record.merchant_id != merchant_id:
        raise LicenseUnknown("no such license")
    if record.status == "revoked":
        raise LicenseRevoked(f"license {license_id} is revoked: reinstate it first")
    # Read now, not as this process kept it: a key rotated out (and retired) elsewhere a moment ago
    # must not sign the text that replaces the buyer's.
    ring = ports.license_keys.keyring(merchant_id, fresh=True) or ports.license_keys.signing(merchant_id)
    text = signed_text(record, ring)
    cipher = ports.ciphers(merchant_id)
    for _ in range(ROUNDS):
        order = ports.orders.get(record.order_id)
        delivered = open_fulfilment(order, cipher) if order is not None else None
        if order is None or order.status != Status.DELIVERED or delivered is None:
            raise StateConflict(f"order {record.order_id} is not delivered", code="order_not_delivered")
        if record.unit >= len(delivered.codes):
            raise IntegrityViolation(f"order {order.order_id} was delivered without license {license_id}")
        if delivered.codes[record.unit] != text:
            codes = [*delivered.codes]
            codes[record.unit] = text
            sealed = seal_fulfilment(delivered.model_copy(update={"codes": codes}), order.order_id, cipher)
            try:
                data = {"license_id": license_id, "kid": ring.current}
                ports.orders.note(order, "license.reissued", now, data, fulfilment=sealed)
            except StateConflict:
                continue  # changed meanwhile (or this write applied, its answer lost): read it again
        # The order shows this text (by this call, by one whose answer was lost, or one beside it): only
        # now does the record name its key, so a reissue that failed never looks done.
        if record.kid != ring.current:
            ports.licenses.resigned(license_id, ring.current)
        return dataclasses.replace(record, kid=ring.current)
    raise StateConflict(f"order {record.order_id} kept changing; try again")
