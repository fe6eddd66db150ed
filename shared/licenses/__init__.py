"""Licenses: signed license keys, signed activations and the merchant's keyring (docs/licenses.md).
Pure: no store, no routes; the shop's wiring keeps the keys and counts activations."""

from shared.licenses.activation import Activation, sign_activation, verify_activation
from shared.licenses.errors import (
    BadSignature,
    Expired,
    LicenseRefused,
    Malformed,
    UnknownKey,
    WrongLicense,
    WrongMachine,
    WrongMerchant,
    WrongProduct,
)
from shared.licenses.keyring import (
    Keyring,
    private_bytes,
    private_key,
    public_bytes,
    public_key,
    seal_private_key,
    unseal_private_key,
)
from shared.licenses.license import License, LicensePayload, new_license_id, sign_license, verify_license

__all__ = [
    "Activation",
    "BadSignature",
    "Expired",
    "Keyring",
    "License",
    "LicensePayload",
    "LicenseRefused",
    "Malformed",
    "UnknownKey",
    "WrongLicense",
    "WrongMachine",
    "WrongMerchant",
    "WrongProduct",
    "new_license_id",
    "private_bytes",
    "private_key",
    "public_bytes",
    "public_key",
    "seal_private_key",
    "sign_activation",
    "sign_license",
    "unseal_private_key",
    "verify_activation",
    "verify_license",
]
