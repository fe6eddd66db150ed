"""RSA keys and RSA-SHA256 signatures for the provider kits and tests.

Alipay (RSA2) and WeChat Pay (WECHATPAY2-SHA256-RSA2048) both sign with RSA-2048 keys, PKCS#1 v1.5
over SHA-256, base64 in the message; what each one signs (its signing text) stays in its own kit.
Written here from the cryptography library, apart from shared/providers/, so the two can disagree.
"""

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def new_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key (the slow part of the provider tests: make one per kit or module)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """The key as PKCS#8 PEM, unencrypted (as the providers' consoles hand a merchant its key)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The public half of `key` (or `key` itself) as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSA-SHA256 (PKCS#1 v1.5) of `message`, base64."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verifies(key: rsa.RSAPublicKey, message: bytes, signature: str, strict: bool = True) -> bool:
    """True if `signature` (base64) is `key`'s RSA-SHA256 of `message`. `strict`: base64 with
    characters outside its alphabet is refused rather than read without them."""
    try:
        key.verify(base64.b64decode(signature, validate=strict), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):  # ValueError: not base64
        return False
    return True
