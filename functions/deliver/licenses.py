"""Issuing an order's licenses (docs/licenses.md "Issuing"): one per unit, signed with the merchant's
current key, each recorded with one conditional put.

Idempotent per (order, unit): a license's id comes from the order id and the unit, and its record is
put only if absent, so a retried delivery (a crash after some puts, a lost answer, a redriven message)
finds the records of the first attempt and signs their very payloads again. Ed25519 signatures are
deterministic, so the same key gives the same license texts: the buyer never holds two different
licenses for one unit. Only if the merchant's key was rotated between the attempts is a unit signed
again under the new key (its record then names the new key id); the text of the first attempt was never
shown to anyone (the order was not DELIVERED), and it still verifies, for the same record.
"""

from datetime import datetime, timedelta

from shared.errors import IntegrityViolation
from shared.licensing import LicenseRecord, license_id_for, signed_text
from shared.orders import Order
from shared.ports import Ports
from shared.products import Product


def issue_licenses(order: Order, product: Product, ports: Ports, now: datetime) -> tuple[list[str], dict]:
    """The order's license texts, one per unit, and `{"licenses": [ids]}` for its `order.delivered`
    entry. Raises (to have the delivery retried) if a record or the keyring cannot be written."""
    terms = product.license
    if terms is None:
        raise IntegrityViolation(f"product {product.product_id} has no license terms")
    if ports.licenses is None or ports.license_keys is None:
        raise IntegrityViolation("this function has no license store")
    keyring = ports.license_keys.signing(order.merchant_id)
    kid = keyring.current
    issued = now.replace(microsecond=0)
    valid_days = terms.valid_days
    texts: list[str] = []
    ids: list[str] = []
    for unit in range(order.quantity):
        wanted = LicenseRecord(
            license_id=license_id_for(order.order_id, unit),
            merchant_id=order.merchant_id,
            product_id=order.product_id,
            order_id=order.order_id,
            unit=unit,
            entitlements=tuple(terms.entitlements),
            max_machines=terms.max_machines,
            issued_at=issued,
            expires_at=issued + timedelta(days=valid_days) if valid_days else None,
            kid=kid,
            prefix=terms.prefix,
        )
        record = ports.licenses.put(wanted)  # the first attempt's, if there was one
        if record.kid != kid:  # rotated since the first attempt: signed again, under the current key
            ports.licenses.resigned(record.license_id, kid)
        texts.append(signed_text(record, keyring))
        ids.append(record.license_id)
    return texts, {"licenses": ids}
