"""The text of a signed statement (a license or an activation): `<PREFIX>-<BASE32>`.

BASE32 is RFC 4648 base32 (A-Z 2-7: no 0 1 8 9, so an O is always an O) without `=` padding, of
the payload followed by its 64-byte Ed25519 signature. The signature covers the ASCII prefix and its
dash, then the payload: a license with its prefix changed does not verify. The text has no
punctuation but the one dash and no case: a reader ignores whitespace (a key wrapped in an e-mail)
and case, and refuses any other form of the same bytes (trailing bits set), so one statement has
one text. The layouts of the payloads are in docs/licenses.md, byte by byte.
"""

import base64
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.ids import is_id
from shared.licenses.errors import BadSignature, Malformed

PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,11}")
BASE32 = re.compile(r"[A-Z2-7]+")
SIGNATURE_BYTES = 64
KID_BYTES = 4


@dataclass(frozen=True)
class Signed:
    """A statement as read from its text, not yet verified."""

    prefix: str
    payload: bytes
    signature: bytes

    def kid(self, format_byte: int, what: str) -> str:
        """The key id it names, once its first byte says it is what the caller expects."""
        if self.payload[0] != format_byte:
            raise Malformed(
                f"the {what} starts with byte {self.payload[0]:#04x}, not {format_byte:#04x}: it is another kind "
                "of statement (a license given for an activation, or the other way round) or a newer format"
            )
        if len(self.payload) < 1 + KID_BYTES:
            raise Malformed(f"the {what} was cut short")
        return self.payload[1 : 1 + KID_BYTES].hex()

    def verify(self, public_key: Ed25519PublicKey, what: str) -> None:
        """Checked before any field past the key id is read: only signed bytes are parsed."""
        try:
            public_key.verify(self.signature, signed_message(self.prefix, self.payload))
        except InvalidSignature:
            raise BadSignature(
                f"the {what}'s signature does not match its content (altered, cut short, or not ours)"
            ) from None


def signed_message(prefix: str, payload: bytes) -> bytes:
    return f"{prefix}-".encode("ascii") + payload


def encode(prefix: str, payload: bytes, private_key: Ed25519PrivateKey) -> str:
    if not PREFIX.fullmatch(prefix):
        raise ValueError("a prefix is 1-12 of A-Z 0-9, starting with a letter")
    signature = private_key.sign(signed_message(prefix, payload))
    return f"{prefix}-{base64.b32encode(payload + signature).decode('ascii').rstrip('=')}"


def decode(text: str, what: str) -> Signed:
    """The prefix, payload and signature of a statement's text; Malformed if it is not one."""
    compact = "".join(text.split()).upper()
    prefix, dash, body = compact.partition("-")
    if not dash or not PREFIX.fullmatch(prefix):
        raise Malformed(f"a {what} is a prefix (letters and digits), a dash, then base32: e.g. LIC-AEAQ…")
    if not BASE32.fullmatch(body) or len(body) % 8 in (1, 3, 6):
        raise Malformed(f"the {what} after its prefix is not base32 (A-Z, 2-7), or it was cut short")
    raw = base64.b32decode(body + "=" * (-len(body) % 8))
    if base64.b32encode(raw).decode("ascii").rstrip("=") != body:
        raise Malformed(f"the {what} was cut short or altered at its end")
    if len(raw) <= SIGNATURE_BYTES:
        raise Malformed(f"the {what} is too short to hold a signature: it was cut short")
    return Signed(prefix, raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:])


def kid_bytes(kid: str) -> bytes:
    try:
        raw = bytes.fromhex(kid)
    except ValueError:
        raw = b""
    if len(raw) != KID_BYTES or raw.hex() != kid:
        raise ValueError(f"a key id is {2 * KID_BYTES} lowercase hex digits, not {kid!r}")
    return raw


def id_bytes(value: str, prefix: str) -> bytes:
    """The 10 bytes of one of the shop's ids (`<prefix>_<20 hex digits>`, shared/ids.py)."""
    if not is_id(value, prefix):
        raise ValueError(f"{value!r} is not a {prefix}_ id")
    return bytes.fromhex(value.removeprefix(f"{prefix}_"))


class Reader:
    """Reads a payload's fields in order; a payload too short or too long is Malformed."""

    def __init__(self, payload: bytes, what: str) -> None:
        self._payload, self._at, self._what = payload, 0, what

    def take(self, size: int) -> bytes:
        if self._at + size > len(self._payload):
            raise Malformed(f"the {self._what} was cut short")
        self._at += size
        return self._payload[self._at - size : self._at]

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def id(self, prefix: str) -> str:
        return f"{prefix}_{self.take(10).hex()}"

    def ascii(self, size: int, allowed: re.Pattern[str]) -> str:
        value = self.take(size).decode("latin-1")
        if not allowed.fullmatch(value):
            raise Malformed(f"the {self._what} holds a field this format does not allow")
        return value

    def end(self) -> None:
        if self._at != len(self._payload):
            raise Malformed(f"the {self._what} has bytes after its last field")
