"""Merchant API keys from the ops CLI against the local runtime: a created key works, a rotated
key's successor works and the old one stops, a revoked key stops, and no key is ever stored or listed."""

import io
import json
from dataclasses import asdict

import pytest

from infra.ops.cli import Console, main
from infra.ops.target import local_target
from shared.adapters import merchants as merchant_store
from tests.support import stored_text


def ops(runtime, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), target=local_target(asdict(runtime.info)), console=Console(out=out, err=err))
    return code, out.getvalue().strip(), err.getvalue()


def works(shop, key: str) -> bool:
    # As if API Gateway's authorizer cache (300 s, which the local gateway keeps too) had run out.
    shop.runtime.gateway._auth_cache.clear()
    response = shop.merchant("GET", "/merchant/products/prd_" + "0" * 20, key=key)
    assert response.status_code in (403, 404), response.text  # 404: authorised, no such product
    return response.status_code == 404


@pytest.fixture
def merchant(runtime):
    merchant_id, first_key = merchant_store().create_merchant("Keys Ltd")
    return merchant_id, first_key


def test_a_created_key_works_and_is_listed_by_prefix_only(runtime, shop, merchant):
    merchant_id, first = merchant
    code, key, err = ops(runtime, "keys", "create", "--merchant", merchant_id, "--live")

    assert code == 0 and key.startswith("mk_live_") and "shown only now" in err
    assert works(shop, key) and works(shop, first)
    code, listed, _ = ops(runtime, "keys", "list", "--merchant", merchant_id, "--json")
    records = json.loads(listed)
    assert code == 0 and len(records) == 2 and key[:12] in [r["prefix"] for r in records]
    assert key not in listed and first not in listed
    assert key not in stored_text() and first not in stored_text()


def test_a_rotated_key_is_replaced_and_a_revoked_key_stops(runtime, shop, merchant):
    merchant_id, first = merchant
    (record,) = json.loads(ops(runtime, "keys", "list", "--merchant", merchant_id, "--json")[1])

    code, second, _ = ops(runtime, "keys", "rotate", "--merchant", merchant_id, "--key", record["key_id"])
    assert code == 0 and second.startswith("mk_test_")  # the old key's kind
    assert works(shop, second) and not works(shop, first)

    (current,) = json.loads(ops(runtime, "keys", "list", "--merchant", merchant_id, "--json")[1])
    code, out, _ = ops(runtime, "keys", "revoke", "--merchant", merchant_id, "--key", current["key_id"])
    assert code == 0 and "revoked" in out
    assert not works(shop, second)
    assert json.loads(ops(runtime, "keys", "list", "--merchant", merchant_id, "--json")[1]) == []


def test_another_merchants_key_cannot_be_revoked_and_bad_ids_are_usage_errors(runtime, shop, merchant):
    merchant_id, first = merchant
    other_id, _ = merchant_store().create_merchant("Someone else")
    (record,) = json.loads(ops(runtime, "keys", "list", "--merchant", merchant_id, "--json")[1])

    code, _, err = ops(runtime, "keys", "revoke", "--merchant", other_id, "--key", record["key_id"])
    assert code == 1 and "has no key" in err
    assert works(shop, first)
    assert ops(runtime, "keys", "revoke", "--merchant", "../etc", "--key", record["key_id"])[0] == 2
    assert ops(runtime, "keys", "create", "--merchant", merchant_id, "--key", "x")[0] == 2
