"""Every JSON route answers 415 `unsupported_media_type` to a body of another content type, read from
the routes' own OpenAPI document, so a new route cannot be left out. Before, a form body reached the
route's model as a form (curl -d: 422 `name: Field required`) and a multipart one with no boundary
was a 500."""

import re

import pytest
import requests

OTHER_TYPES = (
    "multipart/form-data",  # no boundary: Powertools' multipart parser raised ValueError (a 500)
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",  # what curl -d sends
    "text/plain",
    "application/xml",
)
BODY = b'{"name": "Steam 50", "price": {"amount": 3500, "currency": "CNY"}}'


@pytest.fixture(scope="module")
def json_routes(shop) -> list[tuple[str, str]]:
    document = requests.get(f"{shop.url}/openapi.json", timeout=30).json()
    routes = [
        (method.upper(), re.sub(r"\{[^}]*\}", "prd_" + "0" * 20, path))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if set(operation.get("requestBody", {}).get("content", {})) == {"application/json"}
    ]
    assert ("PATCH", "/merchant/products/prd_" + "0" * 20) in routes and ("PUT", "/merchant/shop") in routes
    return routes


def test_every_json_route_refuses_another_content_type_with_415(shop, json_routes):
    for method, path in json_routes:
        for content_type in OTHER_TYPES:
            response = shop.merchant(method, path, data=BODY, headers={"Content-Type": content_type})
            assert response.status_code == 415, (method, path, content_type, response.text)
            assert response.json()["error"]["code"] == "unsupported_media_type"


def test_the_issues_multipart_patch_is_415_and_json_still_works(shop):
    product_id = shop.new_product([], name="Content types")
    path = f"/merchant/products/{product_id}"

    refused = shop.merchant("PATCH", path, data=b"", headers={"Content-Type": "multipart/form-data"})
    assert refused.status_code == 415, refused.text

    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        changed = shop.merchant(
            "PATCH", path, data=b'{"name": "Renamed"}', headers={"Content-Type": content_type}
        )
        assert changed.status_code == 200 and changed.json()["name"] == "Renamed", changed.text
