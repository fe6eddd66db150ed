"""Verify a miaofa license key (or an activation) offline, with `cryptography` and the standard library.

Copy this file into your software. Give it the shop's published keys (the JWK Set document) and the
text; it returns what the license says, or raises LicenseError whose `kind` says why not:
malformed, unknown_key, bad_signature, wrong_merchant, wrong_product, wrong_license, wrong_machine,
expired. The format is described byte by byte in docs/licenses.md.

    python verify_license.py keys.json LIC-AEAQ...              # prints the license as JSON
    python verify_license.py keys.json ACT-AIAQ... --activation  # or an activation
"""

import base64
import json
import re
import struct
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LICENSE_FORMAT, ACTIVATION_FORMAT = 0x01, 0x02
PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,11}")
ENTITLEMENT = re.compile(r"[A-Za-z0-9._:-]{1,32}")
MACHINE = re.compile(r"[!-~]{1,128}")


class LicenseError(Exception):
    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def public_keys(jwks):
    """{kid: public key} from the shop's JWK Set: {"keys": [{"kty": "OKP", "crv": "Ed25519", ...}]}."""
    keys = {}
    for jwk in jwks["keys"]:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
            keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _open(text, jwks, format_byte, what):
    """The verified payload's fields reader: checks the text, the key id and the signature."""
    compact = "".join(text.split()).upper()
    prefix, dash, body = compact.partition("-")
    if (
        not dash
        or not PREFIX.fullmatch(prefix)
        or not re.fullmatch(r"[A-Z2-7]+", body)
        or len(body) % 8 in (1, 3, 6)
    ):
        raise LicenseError("malformed", f"not a {what}: PREFIX-BASE32 expected")
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    if base64.b32encode(raw).decode().rstrip("=") != body or len(raw) <= 64 + 5:
        raise LicenseError("malformed", f"the {what} was cut short or altered")
    payload, signature = raw[:-64], raw[-64:]
    if payload[0] != format_byte:
        raise LicenseError("malformed", f"not a {what} (first byte {payload[0]:#04x})")
    kid = payload[1:5].hex()
    key = public_keys(jwks).get(kid)
    if key is None:
        raise LicenseError("unknown_key", f"key id {kid} is not among the published keys")
    try:
        key.verify(signature, f"{prefix}-".encode() + payload)
    except InvalidSignature:
        raise LicenseError("bad_signature", f"the {what} was altered or not signed by the shop") from None
    return kid, _Reader(payload[5:], what)


class _Reader:
    def __init__(self, data, what):
        self.data, self.at, self.what = data, 0, what

    def take(self, size):
        if self.at + size > len(self.data):
            raise LicenseError("malformed", f"the {self.what} was cut short")
        self.at += size
        return self.data[self.at - size : self.at]

    def number(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(fmt)))[0]

    def ascii(self, pattern):
        value = self.take(self.number("B")).decode("latin-1")
        if not pattern.fullmatch(value):
            raise LicenseError("malformed", f"the {self.what} holds a field its format does not allow")
        return value

    def end(self):
        if self.at != len(self.data):
            raise LicenseError("malformed", f"the {self.what} has bytes after its last field")


def verify_license(text, jwks, now=None, merchant_id=None, product_id=None):
    """The license as a dict (times in Unix seconds, None for no expiry / no machine limit)."""
    kid, r = _open(text, jwks, LICENSE_FORMAT, "license")
    license_id, merchant, product, order = (f"{p}_{r.take(10).hex()}" for p in ("lic", "mer", "prd", "ord"))
    issued, expires, machines, count = r.number("I"), r.number("I"), r.number("H"), r.number("B")
    entitlements = [r.ascii(ENTITLEMENT) for _ in range(count)]
    r.end()
    if merchant_id is not None and merchant != merchant_id:
        raise LicenseError("wrong_merchant", f"the license is for merchant {merchant}")
    if product_id is not None and product != product_id:
        raise LicenseError("wrong_product", f"the license is for product {product}")
    if expires and (time.time() if now is None else now) >= expires:
        raise LicenseError("expired", f"the license expired at {expires}")
    return {
        "kid": kid,
        "license_id": license_id,
        "merchant_id": merchant,
        "product_id": product,
        "order_id": order,
        "issued_at": issued,
        "expires_at": expires or None,
        "max_machines": machines or None,
        "entitlements": entitlements,
    }


def verify_activation(text, jwks, now=None, license_id=None, machine=None):
    """The activation as a dict: this machine may run this license until `expires_at` (Unix seconds)."""
    kid, r = _open(text, jwks, ACTIVATION_FORMAT, "activation")
    activated = f"lic_{r.take(10).hex()}"
    issued, expires = r.number("I"), r.number("I")
    name = r.ascii(MACHINE)
    r.end()
    if license_id is not None and activated != license_id:
        raise LicenseError("wrong_license", f"the activation is for license {activated}")
    if machine is not None and name != machine:
        raise LicenseError("wrong_machine", "the activation is for another machine")
    if (time.time() if now is None else now) >= expires:
        raise LicenseError("expired", f"the activation ended at {expires}")
    return {"kid": kid, "license_id": activated, "machine": name, "issued_at": issued, "expires_at": expires}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as keys:
        document = json.load(keys)
    verify = verify_activation if "--activation" in sys.argv[3:] else verify_license
    try:
        print(json.dumps(verify(sys.argv[2], document), indent=2))
    except LicenseError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
