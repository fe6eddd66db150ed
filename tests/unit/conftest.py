"""Unit tests' fixtures: the use cases' ports as in-memory fakes (tests/fakes), and no crash point
left armed after a test (shared/faults.py)."""

import pytest

from shared import faults
from tests.fakes import FakePorts, fake_ports


@pytest.fixture
def fakes() -> FakePorts:
    """A Ports of fakes; a test file that needs other providers defines its own."""
    return fake_ports()


@pytest.fixture(autouse=True)
def no_crash_points_left():
    yield
    faults.disarm()
