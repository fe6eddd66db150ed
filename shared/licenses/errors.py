"""Why a license or an activation is refused: one class per kind, so callers branch on the type.

`kind` is the name the verification snippets (docs/snippets/) use for the same refusal; `code` is
the one an API answer carries."""

from shared.errors import DomainError


class LicenseRefused(DomainError):
    """A license or an activation that does not verify, or not for what the verifier expects."""

    status, code, kind = 422, "license_refused", "refused"


class Malformed(LicenseRefused):
    """Not a license (or activation) of this format: bad prefix, not base32, truncated, bad layout."""

    status, code, kind = 400, "license_malformed", "malformed"


class UnknownKey(LicenseRefused):
    """Signed under a key id the keyring does not have (never published, retired, or tampered)."""

    code, kind = "license_unknown_key", "unknown_key"


class BadSignature(LicenseRefused):
    """The signature does not match the content: tampered, or made by another key."""

    code, kind = "license_bad_signature", "bad_signature"


class Expired(LicenseRefused):
    code, kind = "license_expired", "expired"


class WrongMerchant(LicenseRefused):
    code, kind = "license_wrong_merchant", "wrong_merchant"


class WrongProduct(LicenseRefused):
    code, kind = "license_wrong_product", "wrong_product"


class WrongLicense(LicenseRefused):
    """An activation for another license."""

    code, kind = "activation_wrong_license", "wrong_license"


class WrongMachine(LicenseRefused):
    """An activation for another machine."""

    code, kind = "activation_wrong_machine", "wrong_machine"
