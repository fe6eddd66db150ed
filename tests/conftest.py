"""Shared fixtures. The local runtime (embedded AWS + the real handlers) is started once per session,
only when a test asks for it; unit tests never start it."""

import pytest

from tests.support import Shop


@pytest.fixture(scope="session")
def runtime():
    from infra.local.runtime import LocalRuntime

    local = LocalRuntime(port=0, quiet=True, seed=True, schedule_seconds=3600)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def shop(runtime) -> Shop:
    return Shop(runtime)
