"""Provider credentials: absent means off; present but empty, short, a placeholder or an unparsable
key means the configuration does not load (the shop refuses to start), and no error shows a value."""

import json

import pytest

from shared.providers.config import ProviderConfigError, parse_configs
from tests.providers.keys import new_key, private_pem, public_pem

KEY = new_key()
PRIVATE_PEM = private_pem(KEY)
PUBLIC_PEM = public_pem(KEY)
STRIPE = {"secret_key": "sk_test_51Hq8ZrT4mN7pL1sT9wY3kB6", "webhook_secret": "whsec_Zr4mN7pL1sT9wY3kB6q"}
ALIPAY = {
    "app_id": "2021000000000001",
    "seller_id": "2088000000000001",
    "app_private_key": PRIVATE_PEM,
    "alipay_public_key": PUBLIC_PEM,
}
WECHATPAY = {
    "mchid": "1900000001",
    "appid": "wx0000000000000001",
    "merchant_serial_no": "5157F09EFDC096DE15EBE81A47057A72",
    "merchant_private_key": PRIVATE_PEM,
    "apiv3_key": "Kq8ZrT4mN7pL1sT9wY3kB6aQ2xV5cD0e",
    "platform_public_keys": {"PUB_KEY_ID_0000000001": PUBLIC_PEM},
}


def test_no_provider_is_a_valid_configuration():
    configs = parse_configs("{}")
    assert (configs.stripe, configs.alipay, configs.wechatpay) == (None, None, None)


def test_every_provider_configured_loads():
    configs = parse_configs(json.dumps({"stripe": STRIPE, "alipay": ALIPAY, "wechatpay": WECHATPAY}))
    assert configs.stripe.api_url == "https://api.stripe.com"
    assert configs.alipay.gateway_url == "https://openapi.alipay.com/gateway.do"
    assert configs.wechatpay.api_url == "https://api.mch.weixin.qq.com"


def test_a_bare_base64_key_as_the_consoles_show_it_is_accepted():
    bare = "".join(line for line in PUBLIC_PEM.splitlines() if "-----" not in line)
    configs = parse_configs({"alipay": {**ALIPAY, "alipay_public_key": bare}})
    assert configs.alipay.alipay_public_key.startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "   ",
        "changeme",
        "short_secret",
        "sk_test_xxxxxxxxxxxxxxxxxxxx",
        "whsec_your_webhook_secret_here",
        "<webhook secret>",
    ],
)
def test_an_empty_short_or_placeholder_secret_is_refused_without_showing_it(secret):
    with pytest.raises(ProviderConfigError) as refused:
        parse_configs({"stripe": {**STRIPE, "webhook_secret": secret}})
    assert "stripe.webhook_secret" in str(refused.value)
    assert secret.strip() == "" or secret not in str(refused.value)


@pytest.mark.parametrize(
    ("provider", "field", "value"),
    [
        ("alipay", "app_private_key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"),
        ("alipay", "alipay_public_key", "MIIBIjANBgkqhkiG9w0BAQEFAAOC"),
        ("wechatpay", "apiv3_key", "Kq8ZrT4mN7pL1sT9wY3kB6aQ2xV5cD0"),  # 31 characters
        ("wechatpay", "platform_public_keys", {}),
        ("alipay", "app_id", ""),
    ],
)
def test_a_key_that_does_not_parse_or_a_missing_field_is_refused(provider, field, value):
    base = {"alipay": ALIPAY, "wechatpay": WECHATPAY}[provider]
    with pytest.raises(ProviderConfigError) as refused:
        parse_configs({provider: {**base, field: value}})
    assert f"{provider}.{field}" in str(refused.value)


def test_an_unknown_provider_or_field_is_refused_rather_than_ignored():
    with pytest.raises(ProviderConfigError):
        parse_configs({"paypal": {"secret": "x" * 32}})
    with pytest.raises(ProviderConfigError):
        parse_configs({"stripe": {**STRIPE, "webhook_secrets": STRIPE["webhook_secret"]}})


def test_malformed_json_is_refused():
    with pytest.raises(ProviderConfigError, match="not JSON"):
        parse_configs("{stripe:")


def test_a_loaded_configuration_never_prints_its_secrets():
    configs = parse_configs({"stripe": STRIPE, "wechatpay": WECHATPAY})
    shown = f"{configs!r} {configs} {configs.stripe!r} {configs.wechatpay}"
    for secret in (STRIPE["secret_key"], STRIPE["webhook_secret"], WECHATPAY["apiv3_key"], "PRIVATE KEY"):
        assert secret not in shown


def test_the_local_runtime_refuses_to_start_with_a_weak_provider_secret():
    from infra.local.runtime import LocalRuntime

    with pytest.raises(ValueError, match="stripe.secret_key"):
        LocalRuntime(port=0, providers={"stripe": {**STRIPE, "secret_key": "sk_test_changeme_please"}})
