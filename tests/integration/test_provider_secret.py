"""Provider credentials live in one Secrets Manager secret (here in the embedded AWS): a rotated
secret is used once its cached copy expires, with no deploy; a weak one put there is never trusted."""

import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from shared.settings import settings
from tests.e2e.test_provider_conformance import checkout, post


@pytest.fixture
def provider_secret(kits):
    """Put a new value in the secret; the original is put back afterwards."""
    client = boto3.client("secretsmanager")
    name = settings().payment_providers_secret
    original = client.get_secret_value(SecretId=name)["SecretString"]

    def put(value: dict) -> None:
        client.put_secret_value(SecretId=name, SecretString=json.dumps(value))
        parameters.clear_caches()  # as if the 5-minute cache had run out

    yield json.loads(original), put
    client.put_secret_value(SecretId=name, SecretString=original)
    parameters.clear_caches()


def test_a_rotated_webhook_secret_is_used_without_a_deploy(shop, kits, provider_secret):
    stripe = kits["stripe"]
    current, put = provider_secret
    order = checkout(shop, stripe)
    rotated = "whsec_" + "5f" * 24
    assert post(shop, stripe, stripe.signed(stripe.paid(order).body, secret=rotated)).status_code == 400

    put({**current, "stripe": {**current["stripe"], "webhook_secret": rotated}})

    assert post(shop, stripe, stripe.paid(order)).status_code == 400  # the old secret no longer verifies
    answered = post(shop, stripe, stripe.signed(stripe.paid(order).body, secret=rotated))
    assert answered.status_code == 200, answered.text
    assert shop.wait_for(order, "DELIVERED")["status"] == "DELIVERED"


def test_a_placeholder_put_in_the_secret_is_never_trusted(shop, kits, provider_secret):
    stripe = kits["stripe"]
    current, put = provider_secret
    order = checkout(shop, stripe)
    placeholder = "whsec_your_webhook_secret_here"

    put({**current, "stripe": {**current["stripe"], "webhook_secret": placeholder}})
    forged = post(shop, stripe, stripe.signed(stripe.paid(order).body, secret=placeholder))

    assert forged.status_code == 500 and placeholder not in forged.text
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "PENDING_PAYMENT"
