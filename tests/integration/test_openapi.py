"""GET /openapi.json, as the local runtime serves it, agrees with API.md and with the template's
routes, both ways. (The handlers are not imported here: only the runtime loads them, as Lambda does.)

docs/API.md is the repository's copy of the contract (../shared/API.md), extended only by adding."""

import re
from pathlib import Path

import pytest
import requests

from infra.local.template import load

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "API.md"
UPSTREAM = ROOT.parent / "shared" / "API.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Routes the contract names that are not built yet, each with the issue that builds it. Once
# built, the route is in the document and test_api_md_and_the_document_name_the_same_routes fails
# until its line here is deleted.
NOT_YET: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def served(shop) -> dict:
    answer = requests.get(f"{shop.url}/openapi.json", timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    document = answer.json()
    assert document["openapi"].startswith("3.1.")
    return document


def shape(path: str) -> str:
    """A path with its parameters unnamed: API.md writes {id} where the code says {product_id}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def contract_routes(text: str) -> set[tuple[str, str]]:
    """Every `METHOD /path` in the first cell of a table row (GET/PATCH names two; ?query dropped)."""
    routes = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split(" | ")[0]
        for methods, path in re.findall(r"`((?:[A-Z]+/)*[A-Z]+) (/[^`?\s]*)", first_cell):
            for method in methods.split("/"):
                assert method in METHODS, f"API.md: {method} in {first_cell!r}"
                routes.add((method, shape(path)))
    return routes


def document_routes(served: dict) -> set[tuple[str, str]]:
    return {(method.upper(), shape(path)) for path, item in served["paths"].items() for method in item}


def test_the_parser_reads_the_contracts_table_rows():
    rows = "| `GET /merchant/orders?status=&cursor=` · `GET /merchant/orders/{id}` | x `POST /not/me` |\n"
    rows += "| `GET/PATCH /merchant/products/{id}` | change |\n"
    assert contract_routes(rows) == {
        ("GET", "/merchant/orders"),
        ("GET", "/merchant/orders/{}"),
        ("GET", "/merchant/products/{}"),
        ("PATCH", "/merchant/products/{}"),
    }


def test_api_md_and_the_document_name_the_same_routes(served):
    contract = contract_routes(CONTRACT.read_text())
    built = document_routes(served)
    assert not set(NOT_YET) & built, "built now: delete it from NOT_YET"
    assert sorted(contract - set(NOT_YET) - built) == [], "in API.md, not in /openapi.json"
    assert sorted(built - contract) == [], "in /openapi.json, not in API.md"


def test_the_template_routes_exactly_what_the_document_describes(served):
    template = {(route.method, shape(route.path)) for route in load().routes}
    assert template == document_routes(served)


def test_the_repositorys_contract_only_adds_to_the_shared_one():
    if not UPSTREAM.exists():
        pytest.skip("../shared/API.md is not beside this checkout")
    ours = iter(CONTRACT.read_text().splitlines())
    missing = [line for line in UPSTREAM.read_text().splitlines() if not any(line == mine for mine in ours)]
    assert missing == [], "docs/API.md must keep every line of ../shared/API.md, in order"


def test_every_route_documents_its_success_and_the_one_error_shape(served):
    """API.md's error shape everywhere, but for the authorizer's refusals (API Gateway's own body) and
    a hosted page's "not found", which is a page in the buyer's language (docs/buyer-pages.md). The
    checkout's 403 is its own (`risk_blocked`), in the error shape with the reference to quote."""
    for path, item in served["paths"].items():
        for method, operation in item.items():
            answers = operation["responses"]
            assert any(code.startswith("2") for code in answers), (method, path)
            if "pages" in operation["tags"]:
                assert answers["404"]["content"] == {"text/html": {"schema": {"type": "string"}}}, path
            for code, answer in answers.items():
                if "pages" in operation["tags"] and code == "404":
                    continue
                if code.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    own = code == "403" and (method, path) == ("post", "/api/orders")
                    shape = "GatewayRefusal" if code in ("401", "403") and not own else "ErrorBody"
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path, code)
            if path.startswith("/merchant"):
                assert {"401", "403"} <= set(answers), (method, path)


def test_every_merchant_operation_requires_the_merchant_key_and_no_other_does(served):
    for path, item in served["paths"].items():
        for method, operation in item.items():
            secured = operation.get("security") == [{"merchantKey": []}]
            assert secured == path.startswith("/merchant"), (method, path)
