"""Settings: development sandbox secrets are refused outside local mode."""

import pytest
from pydantic import ValidationError

from shared.settings import DEVELOPMENT_SECRETS, Settings
from tests.fakes import REQUIRED_SETTINGS

REQUIRED = REQUIRED_SETTINGS
PAY_URL = "https://sandbox.example/pay"
STRONG_SECRET = "whsec_Q2xqv8Zr4mN7pL1sT9wY3kB6"
ALL_ALIASES = [
    *REQUIRED,
    "SANDBOX_SECRET",
    "SANDBOX_PAY_URL",
    "MIAOFA_LOCAL",
    "RESERVATION_MINUTES",
    "REDRIVE_AFTER_SECONDS",
    "ORDER_TOKEN_SECRET",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The process environment must not decide these tests."""
    for name in ALL_ALIASES:
        monkeypatch.delenv(name, raising=False)


def make(**overrides) -> Settings:
    return Settings(**{**REQUIRED, **overrides})


@pytest.mark.parametrize("secret", sorted(DEVELOPMENT_SECRETS), ids=lambda s: repr(s))
def test_a_development_secret_is_refused_outside_local_mode(secret):
    with pytest.raises(ValidationError, match="SANDBOX_SECRET"):
        make(SANDBOX_PAY_URL=PAY_URL, SANDBOX_SECRET=secret, MIAOFA_LOCAL=False)


def test_an_absent_secret_is_refused_outside_local_mode():
    with pytest.raises(ValidationError):
        make(SANDBOX_PAY_URL=PAY_URL)


@pytest.mark.parametrize("secret", sorted(DEVELOPMENT_SECRETS), ids=lambda s: repr(s))
def test_a_development_secret_is_accepted_in_local_mode(secret):
    loaded = make(SANDBOX_PAY_URL=PAY_URL, SANDBOX_SECRET=secret, MIAOFA_LOCAL=True)
    assert loaded.local_mode is True
    assert loaded.sandbox_secret == secret


def test_a_strong_secret_is_accepted_outside_local_mode():
    loaded = make(SANDBOX_PAY_URL=PAY_URL, SANDBOX_SECRET=STRONG_SECRET)
    assert loaded.local_mode is False
    assert loaded.sandbox_secret == STRONG_SECRET
    assert loaded.orders_table == "orders"


def test_a_development_secret_from_the_environment_is_refused_outside_local_mode(monkeypatch):
    for name, value in {
        **REQUIRED,
        "SANDBOX_PAY_URL": PAY_URL,
        "SANDBOX_SECRET": "changeme",
        "MIAOFA_LOCAL": "false",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_local_mode_from_the_environment_accepts_a_development_secret(monkeypatch):
    for name, value in {
        **REQUIRED,
        "SANDBOX_PAY_URL": PAY_URL,
        "SANDBOX_SECRET": "changeme",
        "MIAOFA_LOCAL": "true",
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings().local_mode is True


@pytest.mark.parametrize("secret", ["dev", "DEV", "changeme ", "   ", "short-secret"], ids=repr)
def test_a_weak_secret_is_refused_outside_local_mode_even_without_a_pay_url(secret):
    # The webhook verifies with SANDBOX_SECRET alone, so a weak one is refused whatever else is set.
    with pytest.raises(ValidationError, match="SANDBOX_SECRET"):
        make(SANDBOX_SECRET=secret)


def test_no_sandbox_at_all_is_accepted_outside_local_mode():
    loaded = make()
    assert loaded.sandbox_secret == "" and loaded.sandbox_pay_url == ""


@pytest.mark.parametrize("secret", ["", "dev", "short"], ids=repr)
def test_a_weak_order_token_secret_is_refused_outside_local_mode(secret):
    with pytest.raises(ValidationError, match="ORDER_TOKEN_SECRET"):
        make(ORDER_TOKEN_SECRET=secret)


def test_local_mode_needs_no_order_token_secret():
    assert make(ORDER_TOKEN_SECRET="", MIAOFA_LOCAL=True).local_mode is True
