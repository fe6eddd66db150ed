"""The product page's device id (static/device.js, docs/risk.md "Device id") in a real browser: the
checkout carries it, the same after a reload and in another tab of one browser profile, another in a new
profile, and never the secret it is made from; where localStorage is refused the id comes from the
browser's coarse facts alone (marked weak), and where hashing is not possible there is none — either
way the checkout goes through."""

import re

import pytest

from tests.support import new_codes

pytestmark = pytest.mark.e2e

DEVICE = re.compile(r"d1\.[A-Za-z0-9_-]{22}")
WEAK_DEVICE = re.compile(r"d1w\.[A-Za-z0-9_-]{22}")  # no storage: the facts alone
# What Chrome does for a profile that blocks sites' data: touching localStorage throws.
NO_STORAGE = """
Object.defineProperty(window, "localStorage", {get() { throw new DOMException("refused", "SecurityError"); }});
"""
# What a page served over plain http (other than localhost) has: no crypto.subtle.
NO_HASHING = 'Object.defineProperty(Crypto.prototype, "subtle", {get() { return undefined; }});'


def buy(page) -> dict:
    """Buys one on the product page open in `page` (the sandbox) and gives the body of the checkout
    request the page sent, once the server took it (201) and the page went on to pay."""
    page.locator("#buy").locator("#email").fill("device@example.com")
    page.locator("input[name=provider][value=sandbox]").check()
    assert page.evaluate("window.__violations") == []  # the page's policy refused nothing of ours
    with page.expect_response(lambda r: r.url.endswith("/api/orders") and r.request.method == "POST") as sent:
        page.locator("#pay").click()
    assert sent.value.status == 201, sent.value.text()
    page.wait_for_url(re.compile(r".*/_sandbox/pay\?.*"))
    return sent.value.request.post_data_json


def test_the_checkout_carries_a_device_id_that_one_browser_profile_keeps(shop, browse):
    url = f"{shop.url}/p/{shop.new_product(new_codes(4))}?lang=en"
    page = browse()
    page.goto(url)
    first = buy(page)["device"]
    assert DEVICE.fullmatch(first)
    secret = page.evaluate("localStorage.getItem('miaofa:device')")
    assert re.fullmatch(r"[0-9a-f]{32}", secret) and secret not in first

    page.goto(url)
    page.reload()
    again = buy(page)
    assert again["device"] == first
    assert secret not in str(again)  # the secret stays in the browser

    other = page.context.new_page()  # another tab of the same profile
    other.goto(url)
    assert buy(other)["device"] == first

    elsewhere = browse()  # a new profile: its own storage, its own id
    elsewhere.goto(url)
    fresh = buy(elsewhere)["device"]
    assert DEVICE.fullmatch(fresh) and fresh != first


def test_without_storage_the_id_is_the_weak_one_from_the_browsers_facts_and_the_checkout_goes_through(
    shop, browse
):
    url = f"{shop.url}/p/{shop.new_product(new_codes(2))}?lang=en"
    ids = []
    for _ in range(2):  # two new profiles of one machine and browser: nothing tells them apart
        page = browse()
        page.context.add_init_script(NO_STORAGE)
        page.goto(url)
        ids.append(buy(page)["device"])
    assert WEAK_DEVICE.fullmatch(ids[0]) and ids[1] == ids[0]


def test_without_hashing_the_checkout_goes_through_without_a_device(shop, browse):
    page = browse()
    page.context.add_init_script(NO_HASHING)
    page.goto(f"{shop.url}/p/{shop.new_product(new_codes(1))}?lang=en")
    assert "device" not in buy(page)
