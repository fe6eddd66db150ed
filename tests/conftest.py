"""Shared fixtures. The local runtime (embedded AWS + the real handlers) is started once per session,
only when a test asks for it; unit tests never start it."""

import pytest

from tests.support import Shop


@pytest.fixture(scope="session")
def runtime():
    from infra.local.runtime import LocalRuntime

    # Every test buyer comes from 127.0.0.1 and many leave orders unpaid: lift the reservation caps
    # here (tests/integration/test_reservation_caps.py checks them with small values).
    caps = {"MAX_PENDING_PER_EMAIL": "1000000", "MAX_PENDING_PER_CLIENT": "1000000"}
    local = LocalRuntime(port=0, quiet=True, seed=True, schedule_seconds=3600, environment=caps)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def shop(runtime) -> Shop:
    return Shop(runtime)
