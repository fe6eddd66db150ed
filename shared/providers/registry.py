"""Which providers this shop takes payments with, built from settings (sandbox) and the provider
secret (Stripe, Alipay, WeChat Pay), reused while warm and rebuilt when the secret changes."""

from functools import lru_cache

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

from shared import aws
from shared.providers import PaymentProvider
from shared.providers.config import ProviderConfigs, parse_configs
from shared.settings import settings

SECRET_MAX_AGE = 300  # seconds a fetched secret is trusted before asking Secrets Manager again


def provider(name: str) -> PaymentProvider | None:
    """The configured provider called `name`, or None if this shop does not use it."""
    return _providers(_secret_text()).get(name)


def configured() -> list[str]:
    return sorted(_providers(_secret_text()))


def _secret_text() -> str:
    name = settings().payment_providers_secret
    if not name:
        return "{}"
    # Powertools' own default provider (which clear_caches() empties), made with this shop's retries.
    if "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(boto_config=aws.config())
    value = parameters.get_secret(name, max_age=SECRET_MAX_AGE)
    return value if isinstance(value, str) else value.decode()


@lru_cache(maxsize=2)
def _providers(secret_text: str) -> dict[str, PaymentProvider]:
    configs: ProviderConfigs = parse_configs(secret_text)
    config = settings()
    built: dict[str, PaymentProvider] = {}

    def notify(name: str) -> str:
        return f"{config.public_base_url.rstrip('/')}/webhooks/{name}"

    if config.sandbox_secret and config.sandbox_pay_url:
        from shared.providers.sandbox import SandboxProvider

        built["sandbox"] = SandboxProvider(
            config.sandbox_api_url, config.sandbox_secret, config.sandbox_pay_url
        )
    if configs.stripe is not None:
        from shared.providers.stripe import StripeProvider

        built["stripe"] = StripeProvider(configs.stripe, notify("stripe"))
    if configs.alipay is not None:
        from shared.providers.alipay import AlipayProvider

        built["alipay"] = AlipayProvider(configs.alipay, notify("alipay"))
    if configs.wechatpay is not None:
        from shared.providers.wechatpay import WechatPayProvider

        built["wechatpay"] = WechatPayProvider(configs.wechatpay, notify("wechatpay"))
    return built
