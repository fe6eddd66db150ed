"""A merchant's license signing keys: one current key signs; older keys stay published so that the
licenses they signed keep verifying after a rotation. The public halves are published as a JWK Set
of Ed25519 keys (RFC 8037); the private half is kept sealed under the merchant's KMS-wrapped data key,
as codes and webhook secrets are (shared/codes.py)."""

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from shared.codes import CodeCipher
from shared.errors import Invalid
from shared.licenses.errors import UnknownKey
from shared.licenses.text import kid_bytes

KEY_BYTES = 32


def new_kid() -> str:
    return secrets.token_hex(4)


def private_bytes(key: Ed25519PrivateKey) -> bytes:
    """The private key as its raw 32 bytes (the seed), the form that is sealed."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def private_key(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def signing_key_identity(merchant_id: str, kid: str) -> bytes:
    """The associated data that binds a sealed signing key to its merchant and key id."""
    return f"{merchant_id}/license-key/{kid}".encode()


def seal_private_key(cipher: CodeCipher, merchant_id: str, kid: str, key: Ed25519PrivateKey) -> bytes:
    """The private key sealed under the merchant's data key (AES-256-GCM), bound to merchant and kid."""
    return cipher.encrypt(_b64url(private_bytes(key)), signing_key_identity(merchant_id, kid))


def unseal_private_key(cipher: CodeCipher, merchant_id: str, kid: str, sealed: bytes) -> Ed25519PrivateKey:
    return private_key(_unb64url(cipher.decrypt(sealed, signing_key_identity(merchant_id, kid))))


class Keyring:
    """Public keys by key id, the private half of the current one (if this side signs), and which is
    current. Immutable: `rotate` and `retire` return a new keyring."""

    def __init__(
        self,
        public: Mapping[str, Ed25519PublicKey],
        current: str | None = None,
        signing: Ed25519PrivateKey | None = None,
    ) -> None:
        for kid in public:
            kid_bytes(kid)
        if (current is None) != (signing is None):
            raise ValueError("a signing keyring names its current key id and holds that key's private half")
        if (
            current is not None
            and signing is not None
            and (current not in public or public_bytes(public[current]) != public_bytes(signing.public_key()))
        ):
            raise ValueError("the current key's private half does not match its published public key")
        self._public = dict(public)
        self._current = current
        self._signing = signing

    @classmethod
    def new(cls) -> "Keyring":
        """A keyring of one fresh key, current."""
        kid, key = new_kid(), Ed25519PrivateKey.generate()
        return cls({kid: key.public_key()}, kid, key)

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, oldest first."""
        return tuple(self._public)

    @property
    def current(self) -> str:
        if self._current is None:
            raise ValueError("this keyring only verifies: it has no current signing key")
        return self._current

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The current key id and its private key, to sign with."""
        if self._signing is None:
            raise ValueError("this keyring only verifies: it has no current signing key")
        return self.current, self._signing

    def public_key(self, kid: str) -> Ed25519PublicKey:
        try:
            return self._public[kid]
        except KeyError:
            raise UnknownKey(
                f"signed under key id {kid}, which is not among this merchant's published keys"
            ) from None

    def rotate(self) -> "Keyring":
        """A fresh key becomes current; the others stay, public only, so what they signed still verifies."""
        kid = new_kid()
        while kid in self._public:
            kid = new_kid()
        key = Ed25519PrivateKey.generate()
        return Keyring({**self._public, kid: key.public_key()}, kid, key)

    def retire(self, kid: str) -> "Keyring":
        """Without `kid`: every license it signed stops verifying (for a key that leaked)."""
        self.public_key(kid)
        if kid == self._current:
            raise ValueError("the current key cannot be retired: rotate first")
        return Keyring({k: v for k, v in self._public.items() if k != kid}, self._current, self._signing)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (RFC 7517 with RFC 8037's Ed25519 keys), oldest first."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "kid": kid,
                    "x": _b64url(public_bytes(key)),
                    "use": "sig",
                    "alg": "EdDSA",
                }
                for kid, key in self._public.items()
            ]
        }

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> "Keyring":
        """A verifying keyring from a published JWK Set (422 for anything but Ed25519 keys with key ids)."""
        keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(keys, list):
            raise Invalid('a JWK Set is {"keys": [...]}', code="invalid_jwks")
        public: dict[str, Ed25519PublicKey] = {}
        for entry in keys:
            if not isinstance(entry, Mapping) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                raise Invalid('every key is {"kty": "OKP", "crv": "Ed25519", ...}', code="invalid_jwks")
            kid, x = entry.get("kid"), entry.get("x")
            try:
                kid_bytes(kid if isinstance(kid, str) else "")
                raw = _unb64url(x if isinstance(x, str) else "")
            except ValueError as error:
                raise Invalid(f"a key in the JWK Set is not usable: {error}", code="invalid_jwks") from None
            if len(raw) != KEY_BYTES or not isinstance(kid, str) or kid in public:
                raise Invalid("every key has a 32-byte x and a key id of its own", code="invalid_jwks")
            public[kid] = public_key(raw)
        return cls(public)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64url(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if _b64url(raw) != text:
        raise ValueError("not canonical base64url")
    return raw
