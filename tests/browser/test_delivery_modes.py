"""Top-up and manual delivery in a real browser (issue 19): the product page asks for the product's fields
in the page's language (a field asked twice refused in the page when the entries differ, nothing sent),
a value the checkout refuses said beside its field; a top-up through the fake upstream shows 充值中 /
"Topping up" then 已到账 / "Credited" with its receipt, a manual order waits for its shop with the promised
time and then shows what the shop wrote and its codes; no reload, and neither is ever "sold out".
zh-CN and en on a 360 px phone; screenshots go to test-artifacts/browser/."""

import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from infra.local.upstream import FakeUpstream
from tests.browser.conftest import snap
from tests.browser.test_buyer_pages import PHONE, no_sideways_scrolling, no_violations, snap_widths

pytestmark = pytest.mark.e2e

UPSTREAM = "browser-fake"
# The upstream answers "processing" at once and credits this much later, then calls back: 充值中 for
# a while, however long the page took to load (a late answer within the read timeout was a race).
CREDITED_AFTER_MS = 8000
TOPUP_FIELDS = [
    {"name": "uid", "label": {"zh-CN": "游戏 UID", "en": "Game UID"}, "type": "number", "confirm": True},
    {
        "name": "server",
        "label": {"zh-CN": "区服", "en": "Server"},
        "type": "select",
        "options": ["Asia", "Europe"],
    },
]
MANUAL_FIELDS = [
    {"name": "account", "label": {"zh-CN": "账号邮箱", "en": "Account e-mail"}, "type": "email"},
    {"name": "note", "label": {"zh-CN": "备注", "en": "Note"}, "required": False, "max_length": 40},
]
MANUAL = {"delivery": "manual", "manual": {"promise_minutes": 30, "deadline_minutes": 120}}
SAYS = {
    "zh-CN": {
        "legend": "充值账号",
        "uid": "游戏 UID",
        "uid_again": "游戏 UID（再次输入）",
        "server": "区服",
        "account": "账号邮箱",
        "sandbox": "沙箱（测试支付）",
        "mismatch": "两次输入不一致，请重新输入。",
        "refused": "商家无法接受所填内容，请检查后重试。",
        "topping_up": "充值中",
        "topping_up_long": "已收到付款，正在为您的账号充值，本页会自动更新。",
        "credited": "已到账",
        "credited_long": "已充值到您填写的账号。",
        "sent": "已提交充值",
        "waiting": "等待付款",
        "waiting_shop": "待发货",
        "promise": "已收到付款。商家人工发货，通常在 30 分钟内完成，本页会自动更新。",
        "late": "发货时间已超过商家通常的 30 分钟。订单会发货，或款项退回给您；本页会自动更新。",
        "manual_badge": "人工发货（30 分钟内）",
        "topup_badge": "自动充值",
        "delivered": "已发货",
        "by_the_shop": "商家已发货",
        "copied": "已复制",
    },
    "en": {
        "legend": "Account to top up",
        "uid": "Game UID",
        "uid_again": "Game UID (again)",
        "server": "Server",
        "account": "Account e-mail",
        "sandbox": "Sandbox (test payment)",
        "mismatch": "The two entries differ: type it again.",
        "refused": "The shop cannot take this as entered: check it and try again.",
        "topping_up": "Topping up",
        "topping_up_long": "Payment received. Your account is being topped up; this page updates by itself.",
        "credited": "Credited",
        "credited_long": "Credited to the account you entered.",
        "sent": "Top-up sent",
        "waiting": "Waiting for your payment",
        "waiting_shop": "Waiting for the shop",
        "promise": "Payment received. The shop delivers this order by hand, usually within 30 minutes; "
        "this page updates by itself.",
        "late": "This is taking longer than the shop's usual 30 minutes. It will be delivered or your money "
        "returned; this page updates by itself.",
        "manual_badge": "Delivered by hand within 30 min",
        "topup_badge": "Instant top-up",
        "delivered": "Delivered",
        "by_the_shop": "Delivered by the shop",
        "copied": "Copied",
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeUpstream("upsec_" + secrets.token_urlsafe(32)) as upstream:
        yield upstream


def register(shop, fake, key: str | None = None) -> str:
    """The fake upstream, registered as one of the merchant's upstreams; its name."""
    answer = shop.merchant(
        "PUT", f"/merchant/upstreams/{UPSTREAM}", key=key, json={"url": fake.base_url, "secret": fake.secret}
    )
    assert answer.status_code == 200, answer.text
    return UPSTREAM


def checkout_posts(page) -> list[str]:
    """The checkouts the page sends, as they are sent."""
    sent: list[str] = []
    page.on(
        "request", lambda r: sent.append(r.url) if r.method == "POST" and "/api/orders" in r.url else None
    )
    return sent


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_top_up_buyer_fills_the_fields_pays_and_sees_topping_up_then_credited(shop, browse, fake, lang):
    says = SAYS[lang]
    sku = f"sku-{secrets.token_hex(4)}"
    fake.script(sku, "processing_then_callback", delay_ms=CREDITED_AFTER_MS)
    product_id = shop.new_product(
        [],
        name="Genshin 60 Genesis Crystals",
        price=600,
        delivery="topup",
        topup={"upstream": register(shop, fake), "sku": sku},
        buyer_input=TOPUP_FIELDS,
    )
    page = browse(locale=lang, **PHONE)
    sent = checkout_posts(page)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")

    expect(page.locator(".delivery")).to_have_text(says["topup_badge"])
    expect(page.locator(".stock")).to_have_count(0)  # not counted: never sold out
    expect(page.locator("#buyer-input legend")).to_have_text(says["legend"])
    uid = page.get_by_label(says["uid"], exact=True)
    expect(uid).to_have_attribute("inputmode", "numeric")
    expect(page.locator("#field-server")).to_have_js_property("tagName", "SELECT")
    uid.fill("10086")
    page.get_by_label(says["uid_again"]).fill("10068")  # typed wrong the second time
    page.get_by_label(says["server"]).select_option("Asia")
    page.locator("#email").fill("topup@example.com")
    page.get_by_label(says["sandbox"]).check()
    page.locator("#pay").click()

    expect(page.locator("#error-uid")).to_have_text(says["mismatch"])  # beside the field, in the page
    expect(page.locator("#field-uid-again")).to_be_focused()
    expect(page.locator("#field-uid-again")).to_have_attribute("aria-invalid", "true")
    snap_widths(page, f"topup-confirm-differs-{lang}")  # and on a phone, no sideways scrolling
    page.set_viewport_size(PHONE)
    assert sent == [] and "/p/" in page.url  # refused in the page: nothing sent

    page.locator("#field-uid-again").fill("10086")
    expect(page.locator("#error-uid")).to_be_empty()
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/_sandbox/pay\?.*"))
    order_id = re.search(r"order_id=(ord_[0-9a-f]+)", page.url).group(1)
    assert len(sent) == 1
    page.locator("#pay").click()  # the sandbox pays, and sends the buyer back to the order page

    expect(page.locator("#status")).to_have_text(says["topping_up"])
    expect(page.locator("#explain")).to_have_text(says["topping_up_long"])
    page.evaluate("window.__stillHere = true")
    snap(page, f"topup-topping-up-{lang}-360px")
    expect(page.locator("#status")).to_have_text(says["credited"], timeout=CREDITED_AFTER_MS + 15_000)

    assert page.evaluate("window.__stillHere") is True  # no reload happened
    expect(page.locator("#explain")).to_have_text(says["credited_long"])
    expect(page.locator("#receipt")).to_have_text(fake.topup(order_id).receipt)
    expect(page.locator('.steps [data-step="delivered"]')).to_have_text(says["credited"])
    expect(page.locator("#events li").filter(has_text=says["sent"])).to_have_count(1)
    expect(page.locator("#codes-box")).to_be_hidden()
    no_violations(page)
    snap_widths(page, f"topup-credited-{lang}")
    assert fake.applied(order_id) == 1
    detail = shop.merchant("GET", f"/merchant/orders/{order_id}").json()
    assert detail["buyer_input"] == {"uid": "10086", "server": "Asia"}  # what the page sent


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_manual_order_waits_for_its_shop_then_shows_what_the_shop_sent(shop, browse, lang):
    says = SAYS[lang]
    product_id = shop.new_product([], name="Streaming, 1 month", buyer_input=MANUAL_FIELDS, **MANUAL)
    answer = shop.checkout(product_id, buyer_input={"account": "neko@example.com"})
    assert answer.status_code == 201, answer.text
    order = answer.json()
    page = browse(locale=lang, **PHONE)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")
    expect(page.locator("#status")).to_have_text(says["waiting"])

    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")

    expect(page.locator("#status")).to_have_text(says["waiting_shop"])
    expect(page.locator("#explain")).to_have_text(says["promise"])  # the shop's promise, never "instant"
    page.evaluate("window.__stillHere = true")
    no_sideways_scrolling(page)
    snap(page, f"manual-waiting-{lang}-360px")
    later = browse(locale=lang, **PHONE)  # the same order seen past the promise: said so, no false "soon"
    later.clock.set_system_time(datetime.now(UTC) + timedelta(minutes=31))
    later.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")
    expect(later.locator("#explain")).to_have_text(says["late"])
    later.context.close()

    text = "Account: neko@example.com\nPassword: <b>hunter2</b>\n\nChange it after the first login."
    fulfilled = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/fulfil", json={"text": text, "codes": ["GIFT-7Q2-XK9"]}
    )
    assert fulfilled.status_code == 200, fulfilled.text

    expect(page.locator("#status")).to_have_text(says["delivered"], timeout=15_000)
    assert page.evaluate("window.__stillHere") is True  # no reload happened
    delivered_text = page.locator("#delivered-text")
    expect(delivered_text).to_be_visible()
    assert delivered_text.text_content() == text  # as text: lines kept, nothing parsed as HTML
    assert delivered_text.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    expect(delivered_text.locator("b")).to_have_count(0)
    expect(page.locator("#code-0")).to_have_text("GIFT-7Q2-XK9")
    expect(page.locator("#events li").filter(has_text=says["by_the_shop"])).to_have_count(1)
    page.locator("#codes li button").click()
    expect(page.locator("#codes li button")).to_have_text(says["copied"])
    assert page.evaluate("navigator.clipboard.readText()") == "GIFT-7Q2-XK9"
    no_sideways_scrolling(page)
    no_violations(page)
    snap(page, f"manual-delivered-{lang}-360px")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_value_the_checkout_refuses_is_said_beside_its_field_in_the_pages_language(shop, browse, lang):
    says = SAYS[lang]
    product_id = shop.new_product([], name="Streaming, 1 month", buyer_input=MANUAL_FIELDS, **MANUAL)
    page = browse(locale=lang, **PHONE)
    sent = checkout_posts(page)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    expect(page.locator(".stock")).to_have_count(0)
    expect(page.locator(".delivery")).to_have_text(says["manual_badge"])
    account = page.get_by_label(says["account"])
    expect(account).to_have_attribute("type", "email")
    account.fill("player@localhost")  # an address the browser takes and the checkout does not
    page.locator("#email").fill("buyer@example.com")
    page.get_by_label(says["sandbox"]).check()
    page.locator("#pay").click()

    expect(page.locator("#error-account")).to_have_text(says["refused"])  # the API's 422, by its code
    expect(account).to_have_attribute("aria-invalid", "true")
    expect(account).to_be_focused()
    expect(page.locator("#error")).to_be_empty()
    assert len(sent) == 1 and "/p/" in page.url
    no_sideways_scrolling(page)
    no_violations(page)
    snap(page, f"manual-field-refused-{lang}-360px")

    account.fill("player@example.com")
    expect(page.locator("#error-account")).to_be_empty()
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/_sandbox/pay\?.*"))


def test_a_shops_top_up_and_manual_products_are_never_sold_out(shop, browse, fake):
    from shared.adapters import merchants

    merchant_id, key = merchants().create_merchant("Top-up shop")
    sku = f"sku-{secrets.token_hex(4)}"
    topup = {"upstream": register(shop, fake, key), "sku": sku}
    ids = [
        shop.new_product([], key=key, name="UC 60", delivery="topup", topup=topup, buyer_input=TOPUP_FIELDS),
        shop.new_product([], key=key, name="Streaming, 1 month", buyer_input=MANUAL_FIELDS, **MANUAL),
    ]
    page = browse(locale="zh-CN", **PHONE)
    page.goto(f"{shop.url}/s/{merchant_id}?lang=zh-CN")

    for product_id, badge in zip(ids, ("topup_badge", "manual_badge"), strict=True):
        card = page.locator(f'li.product[data-product-id="{product_id}"]')
        expect(card.locator(".delivery")).to_have_text(SAYS["zh-CN"][badge])
        expect(card.locator(".stock")).to_have_count(0)
    no_sideways_scrolling(page)
    no_violations(page)
    snap(page, "shop-topup-manual-zh-CN-360px")
