"""The JavaScript verification snippet (docs/snippets/verify_license.js) in Chromium's WebCrypto:
a valid license, a tampered one, one signed by a key rotated out but still published, and the other
refusals and activations of tests/unit/test_license_snippets.py, each with the shop's own verdict."""

import pytest

from tests.unit.test_license_snippets import JS_SNIPPET, RUN_CASES, matches, snippet_cases

# WebCrypto is only there in a secure context, which about:blank is not: an https page served by the
# test itself (Playwright answers the request; nothing leaves the machine).
PAGE = "https://verifier.test/"


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.route(
        PAGE,
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>verify</title>"
        ),
    )
    page.goto(PAGE)
    page.add_script_tag(content=JS_SNIPPET.read_text())
    yield page
    context.close()


def test_the_snippet_verifies_in_chromium_as_the_shop_does(page):
    cases = snippet_cases()
    assert page.evaluate("isSecureContext && typeof crypto.subtle.verify") == "function"
    outcomes = page.evaluate("(input) => {" + RUN_CASES + "return runCases(input); }", cases)
    assert outcomes["valid"] == cases["cases"]["valid"]["expect"]
    assert outcomes["tampered"] == "bad_signature"
    assert outcomes["signed-by-a-rotated-out-key"]["kid"] == cases["jwks"]["keys"][0]["kid"]
    assert {n: o for n, o in outcomes.items() if not matches(o, cases["cases"][n]["expect"])} == {}
