"""Activations: the shop's signed statement that one machine is activated for one license until a
time, which the merchant's software keeps and checks offline. Signed with the same merchant key as
licenses, in a format of its own (its first byte), so neither can pass for the other. Layout in
docs/licenses.md."""

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.errors import Invalid
from shared.licenses import text
from shared.licenses.errors import Expired, Malformed, WrongLicense, WrongMachine
from shared.licenses.keyring import Keyring
from shared.licenses.license import LAST_SECOND

ACTIVATION_FORMAT = 0x02
ACTIVATION_PREFIX = "ACT"
MACHINE = re.compile(r"[!-~]{1,128}")  # what the software names its machine by: printable ASCII, no space
ACTIVATION_ERROR = "invalid_activation"


@dataclass(frozen=True)
class Activation:
    """One machine activated for one license from `issued_at` until `expires_at` (whole seconds, UTC)."""

    license_id: str
    machine: str
    issued_at: datetime
    expires_at: datetime
    kid: str


def sign_activation(
    license_id: str,
    machine: str,
    issued: datetime,
    expires: datetime,
    key: Ed25519PrivateKey,
    kid: str,
) -> str:
    """The activation's text, `ACT-<base32>`; 422 for a machine name or times the format cannot carry."""
    if not MACHINE.fullmatch(machine):
        raise Invalid(
            "a machine is named by 1-128 printable ASCII characters, without spaces", code=ACTIVATION_ERROR
        )
    try:
        kid_raw, license_raw = text.kid_bytes(kid), text.id_bytes(license_id, "lic")
    except ValueError as error:
        raise Invalid(f"the activation cannot be signed: {error}", code=ACTIVATION_ERROR) from None
    start, end = _seconds(issued), _seconds(expires)
    if end <= start:
        raise Invalid("an activation ends after it starts", code=ACTIVATION_ERROR)
    payload = (
        bytes([ACTIVATION_FORMAT])
        + kid_raw
        + license_raw
        + struct.pack(">IIB", start, end, len(machine))
        + machine.encode("ascii")
    )
    return text.encode(ACTIVATION_PREFIX, payload, key)


def verify_activation(
    activation_text: str,
    keyring: Keyring,
    *,
    now: datetime,
    license_id: str | None = None,
    machine: str | None = None,
) -> Activation:
    """The activation, if its signature verifies, it has not ended at `now`, and it is for the license
    and machine given (when given). Raises the LicenseRefused kind that says why not."""
    signed = text.decode(activation_text, "activation")
    kid = signed.kid(ACTIVATION_FORMAT, "activation")
    signed.verify(keyring.public_key(kid), "activation")
    found = _parse(signed.payload)
    if license_id is not None and found.license_id != license_id:
        raise WrongLicense(f"the activation is for license {found.license_id}, not {license_id}")
    if machine is not None and found.machine != machine:
        raise WrongMachine("the activation is for another machine")
    if now >= found.expires_at:
        raise Expired(f"the activation ended at {found.expires_at.isoformat()}")
    return found


def _parse(payload: bytes) -> Activation:
    reader = text.Reader(payload, "activation")
    if reader.u8() != ACTIVATION_FORMAT:
        raise Malformed("not an activation")
    kid = reader.take(4).hex()
    license_id = reader.id("lic")
    issued, expires = reader.u32(), reader.u32()
    machine = reader.ascii(reader.u8(), MACHINE)
    reader.end()
    if expires <= issued:
        raise Malformed("the activation ends before it starts")
    return Activation(
        license_id=license_id,
        machine=machine,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        kid=kid,
    )


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("an activation's times are aware datetimes")
    seconds = int(moment.timestamp())
    if not 0 < seconds <= LAST_SECOND:
        raise Invalid(
            "an activation's times are within 1970-2106, which this format holds", code=ACTIVATION_ERROR
        )
    return seconds
