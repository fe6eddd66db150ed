"""Payment providers as the shop's peers: the port for asking one which payments it took for an order.

Reconciliation uses it to recover lost callbacks; each provider's client lives in its own module.
"""

from functools import cache
from typing import Protocol

from shared.payments import PaymentEvent
from shared.settings import settings


class PaymentQuery(Protocol):
    def query(self, order_id: str) -> list[PaymentEvent]:
        """Payments the provider took for this order, as normalised events."""
        ...


class ProviderError(Exception):
    """The provider could not tell us about a payment; nothing is applied, the next run asks again."""


class ProviderUnavailable(ProviderError):
    """No answer: a network error, a timeout, or a 5xx still there after the retries."""


class ProviderRefused(ProviderError):
    """The provider refused the request (4xx, e.g. signed with a wrong secret); retrying will not help."""


class UnexpectedAnswer(ProviderError):
    """A signed answer that is not what the provider's API promises (not JSON, wrong types, too large)."""


@cache
def payment_query(provider: str) -> PaymentQuery | None:
    """The configured query client for `provider`, reused while warm; None if it is not configured."""
    config = settings()
    if provider == "sandbox" and config.sandbox_api_url and config.sandbox_secret:
        from shared.providers.sandbox import SandboxQuery

        return SandboxQuery(config.sandbox_api_url, config.sandbox_secret)
    return None
