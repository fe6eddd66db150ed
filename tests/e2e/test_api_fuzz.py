"""Schemathesis against GET /openapi.json on the local runtime: whatever the fuzzer sends to any
route, the answer is never a 5xx, is one the document lists (status, content type, schema — so every
error is {"error": {"code", "message"}}), and an error leaves every table exactly as it was.

Path parameters are the fuzzer's own or, in the `real ids` run, one of a real product and a real
delivered order, so that bodies, queries and headers are fuzzed against resources that exist."""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local.template import load
from tests.support import all_items, new_codes

# Each test fuzzes one operation on its own merchant: they may run on different workers (conftest.py).
SPREAD_OVER_WORKERS = True
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_shop(shop):
    """A merchant of its own (so the fuzzer's writes touch no other test's data), with a product
    in stock and a delivered order (and its shop's page, `/s/{merchant_id}`)."""
    from shared.adapters import merchants as merchant_store

    merchant_id, key = merchant_store().create_merchant("Fuzzed merchant")
    product_id = shop.new_product(new_codes(30, "FUZZ"), key=key)
    order = shop.buy(product_id)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    ids = {"product_id": product_id, "order_id": order["order_id"], "merchant_id": merchant_id}
    return {"key": key, "ids": ids}


@pytest.fixture(scope="module")
def api(shop):
    """The document as served by the local runtime (what the fuzzer reads)."""
    return schemathesis.openapi.from_url(f"{shop.url}/openapi.json")


# One test per operation, from the template's routes (tests/integration/test_openapi.py: the same
# as the document's), so a new route is fuzzed too.
OPERATIONS = sorted((route.method, route.path) for route in load().routes)
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


CASES = [(m, p, False) for m, p in OPERATIONS] + [(m, p, True) for m, p in OPERATIONS if "{" in p]
MERCHANT = [(m, p) for m, p in OPERATIONS if p.startswith("/merchant")]


@pytest.mark.parametrize(
    ("method", "path", "real_ids"),
    CASES,
    ids=[f"{m} {p}{' (real ids)' if real else ''}" for m, p, real in CASES],
)
def test_no_request_gets_a_5xx_an_undocumented_answer_or_half_writes(
    method, path, real_ids, api, shop, fuzzed_shop
):
    headers = {"Authorization": f"Bearer {fuzzed_shop['key']}"} if path.startswith("/merchant") else {}

    # The tables as the last refused request left them (checked unchanged): the next request's
    # "before", so a run of refusals (most of what a fuzzer sends) costs one scan each, not two.
    unchanged: list = []

    @FUZZ
    @given(case=api[path][method].as_strategy())
    def one_request(case):
        if real_ids and case.path_parameters:
            case.path_parameters = {n: fuzzed_shop["ids"].get(n, v) for n, v in case.path_parameters.items()}
        before = unchanged.pop() if unchanged else _unordered(all_items())
        response = case.call(base_url=shop.url, headers=headers)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            after = _unordered(all_items())
            assert after == before, f"{response.status_code}, state changed"
            unchanged.append(after)

    one_request()


@pytest.mark.parametrize(("method", "path"), MERCHANT, ids=[f"{m} {p}" for m, p in MERCHANT])
@pytest.mark.parametrize("key", [None, "mk_test_" + "0" * 43], ids=["no key", "unknown key"])
def test_a_merchant_route_refuses_a_missing_or_unknown_key_as_documented(method, path, key, api, shop):
    @settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=api[path][method].as_strategy())
    def one_request(case):
        before = all_items()
        response = case.call(base_url=shop.url, headers={"Authorization": f"Bearer {key}"} if key else {})
        assert response.status_code in (401, 403)  # no Authorization: 401; one the fuzzer made up: 403
        case.validate_response(response, checks=CHECKS)
        assert _unordered(all_items()) == _unordered(before)

    one_request()


def test_no_key_is_401_and_an_unknown_one_403(shop):
    assert requests.get(f"{shop.url}/merchant/products", timeout=30).status_code == 401
    unknown = {"Authorization": "Bearer mk_test_" + "0" * 43}
    assert requests.get(f"{shop.url}/merchant/products", headers=unknown, timeout=30).status_code == 403


def _unordered(items: list[dict]) -> list[str]:
    """The items as state: a client's token bucket (`rate#`) counts every request, refused ones too
    (that is its work, not a half-write), and a client's unpaid holds (`unpaid#`) are their entries
    (a refused checkout writes them back as they were, under a new version)."""
    state = []
    for item in items:
        key = item.get("pk", {}).get("S", "")
        if key.startswith("rate#"):
            continue
        if key.startswith("unpaid#"):
            item = {"pk": item["pk"], "holds": item["holds"]}
        state.append(repr(sorted(item.items())))
    return sorted(state)
