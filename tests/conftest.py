"""Shared fixtures. The local runtime (embedded AWS + the real handlers) is started once per session,
only when a test asks for it; unit tests never start it.

The runtime is configured with every payment provider whose kit exists (tests/providers/): each
kit's fake provider server runs on 127.0.0.1 and the provider's entry in the provider secret points
at it, so checkouts, callbacks, queries and refunds for Stripe, Alipay and WeChat Pay all run end to
end without any network."""

import importlib
import os

import pytest

import tests.faults_aws  # noqa: F401 - first, so that every botocore client made later carries its hooks
from tests.support import Shop

KIT_MODULES = ("stripe", "alipay", "wechatpay")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For the parallel suite (`make test`: pytest-xdist, `--dist loadgroup`): a file's tests run on one
    worker, so its module fixtures are made once, except in a file that sets `SPREAD_OVER_WORKERS`
    (independent, long tests: the API fuzz, a third of the suite's time), whose tests go wherever a
    worker is free."""
    for item in items:
        if not getattr(item.module, "SPREAD_OVER_WORKERS", False):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.partition("::")[0]))


def pytest_report_header() -> str:
    return (
        f"miaofa DynamoDB: {os.environ.get('MIAOFA_STORE') or 'moto'} (MIAOFA_STORE, docs/local-runtime.md)"
    )


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
    from infra.local.runtime import ONE_ADDRESS_BUYERS, LocalRuntime

    # Every test buyer comes from 127.0.0.1 and many leave orders unpaid: lift the per-buyer limits
    # (tests/integration/test_reservation_caps.py, test_stock_lockup.py, test_rate_limits.py and
    # test_buyer_mail.py check them with their own values), and the look-ups per client address.
    caps = {**ONE_ADDRESS_BUYERS, "LOOKUPS_PER_CLIENT_HOUR": "1000000"}
    # A rotated-out license key may be retired once every process has seen the rotation: 1 s here.
    caps["LICENSE_KEY_CACHE_SECONDS"] = "1"
    providers = {name: kit.config() for name, kit in kits.items()}
    # The store is moto's DynamoDB unless MIAOFA_STORE=dynalite (the second pass of `make test`).
    local = LocalRuntime(
        port=0,
        quiet=True,
        seed=True,
        schedule_seconds=3600,
        environment=caps,
        providers=providers,
        store=os.environ.get("MIAOFA_STORE") or "moto",
    )
    local.start()
    # The shop most tests buy from runs without risk rules: its test kits pay as one buyer, dozens of
    # times a minute, which the defaults would rightly review. tests/integration/test_screening.py
    # checks the engine (and the defaults) with merchants of its own.
    assert local.info is not None
    local.merchant_call(local.info.url, "PUT", "/merchant/risk/rules", {"version": 0, "rules": []})
    yield local
    local.stop()


@pytest.fixture(scope="session")
def shop(runtime) -> Shop:
    return Shop(runtime)
