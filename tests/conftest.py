"""Shared fixtures. The local runtime (embedded AWS + the real handlers) is started once per session,
only when a test asks for it; unit tests never start it.

The runtime is configured with every payment provider whose kit exists (tests/providers/): each
kit's fake provider server runs on 127.0.0.1 and the provider's entry in the provider secret points
at it, so checkouts, callbacks, queries and refunds for Stripe, Alipay and WeChat Pay all run end to
end without any network."""

import importlib

import pytest

from tests.support import Shop

KIT_MODULES = ("stripe", "alipay", "wechatpay")


@pytest.fixture(scope="session")
def kits():
    started = {}
    for name in KIT_MODULES:
        try:
            module = importlib.import_module(f"tests.providers.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"tests.providers.{name}":
                raise
            continue
        kit = module.Kit()
        kit.start()
        started[name] = kit
    yield started
    for kit in started.values():
        kit.stop()


@pytest.fixture(scope="session")
def runtime(kits):
    from infra.local.runtime import LocalRuntime

    # Every test buyer comes from 127.0.0.1 and many leave orders unpaid: lift the reservation caps
    # here (tests/integration/test_reservation_caps.py checks them with small values), and the
    # look-ups per client address.
    caps = {
        "MAX_PENDING_PER_EMAIL": "1000000",
        "MAX_PENDING_PER_CLIENT": "1000000",
        "LOOKUPS_PER_CLIENT_HOUR": "1000000",  # the per-client cap: tests/integration/test_buyer_mail.py
    }
    providers = {name: kit.config() for name, kit in kits.items()}
    local = LocalRuntime(
        port=0, quiet=True, seed=True, schedule_seconds=3600, environment=caps, providers=providers
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def shop(runtime) -> Shop:
    return Shop(runtime)
