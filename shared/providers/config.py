"""Provider credentials: one JSON secret (Secrets Manager in the cloud; the local runtime fills the
same secret in the embedded AWS from local config), validated once per load.

A provider that is absent is off. A provider that is present with an empty, short or placeholder
secret, or a key that does not parse, makes loading fail: the shop refuses to start rather than
trust a weak secret.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shared.settings import DEVELOPMENT_SECRETS, MIN_SECRET_LENGTH

PLACEHOLDER_MARKS = ("xxxx", "changeme", "change_me", "placeholder", "replace", "your_", "your-", "<", "todo")


class ProviderConfigError(ValueError):
    """The provider configuration is missing, malformed or holds a weak secret."""


def _strong(value: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("contains whitespace or control characters")
    folded = value.strip().lower()
    if folded in DEVELOPMENT_SECRETS or len(folded) < MIN_SECRET_LENGTH:
        raise ValueError("is empty, short or a development default")
    if any(mark in folded for mark in PLACEHOLDER_MARKS):
        raise ValueError("looks like a placeholder")
    return value


def _pem_private(value: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(_pem(value, "PRIVATE KEY").encode(), password=None)
    except ValueError:
        raise ValueError("is not a PEM private key") from None
    return _pem(value, "PRIVATE KEY")


def _pem_public(value: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(_pem(value, "PUBLIC KEY").encode())
    except ValueError:
        raise ValueError("is not a PEM public key") from None
    return _pem(value, "PUBLIC KEY")


def _pem(value: str, kind: str) -> str:
    """Accept a bare base64 key as the provider's console shows it, as well as a PEM block."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text
    body = "".join(text.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"])


Secret = Annotated[str, AfterValidator(_strong)]
PrivateKey = Annotated[str, AfterValidator(_pem_private)]
PublicKey = Annotated[str, AfterValidator(_pem_public)]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __repr__(self) -> str:  # never a secret in a log line or traceback
        return f"{type(self).__name__}(…)"

    __str__ = __repr__


class StripeConfig(_Config):
    # sk_live_… / sk_test_… (or a restricted rk_ key with Checkout, Refunds, PaymentIntents)
    secret_key: Secret
    webhook_secret: Secret  # whsec_… of the endpoint registered for /webhooks/stripe
    api_url: str = "https://api.stripe.com"


class AlipayConfig(_Config):
    app_id: str = Field(min_length=1, max_length=32)
    seller_id: str = Field(min_length=1, max_length=32)  # the merchant's PID (2088…)
    app_private_key: PrivateKey  # RSA2048, signs the shop's requests
    alipay_public_key: PublicKey  # verifies notifies and answers
    gateway_url: str = "https://openapi.alipay.com/gateway.do"
    checkout: Literal["page", "qr"] = "page"  # page pay (redirect) or precreate (a QR to show)


class WechatPayConfig(_Config):
    mchid: str = Field(min_length=1, max_length=32)
    appid: str = Field(min_length=1, max_length=32)
    merchant_serial_no: str = Field(min_length=1, max_length=64)  # of the merchant API certificate
    merchant_private_key: PrivateKey  # apiclient_key.pem, signs the shop's requests
    apiv3_key: Annotated[Secret, Field(min_length=32, max_length=32)]  # decrypts notify resources
    # Verifies notifies and answers: the WeChat Pay public key (`PUB_KEY_ID_…`) or a platform
    # certificate's public key, by the serial the `Wechatpay-Serial` header names.
    platform_public_keys: dict[str, PublicKey] = Field(min_length=1)
    api_url: str = "https://api.mch.weixin.qq.com"


class ProviderConfigs(_Config):
    stripe: StripeConfig | None = None
    alipay: AlipayConfig | None = None
    wechatpay: WechatPayConfig | None = None


def parse_configs(raw: str | dict[str, Any]) -> ProviderConfigs:
    """Validate the secret's JSON; ProviderConfigError names the field, never its value."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        return ProviderConfigs.model_validate(data)
    except (ValueError, ValidationError) as error:
        if isinstance(error, ValidationError):
            first = error.errors(include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ProviderConfigError(f"payment provider config: {where}: {first['msg']}") from None
        raise ProviderConfigError("payment provider config is not JSON") from None
