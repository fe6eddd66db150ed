"""The hosted pages: the shop's listing, product (checkout) and order, and "not found", server-rendered
in the buyer's language.

Everything from a merchant or a buyer is escaped here and set with textContent by the scripts.
Each page runs one inline script and one inline style, allowed by their hashes in a strict
Content-Security-Policy: nothing else runs, loads or is framed, and no Referer leaves the page.
"""

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from functions.storefront.i18n import LANGUAGES, TEXTS, money, money_format
from functions.storefront.shopfront import Listing, Offer
from shared.products import Product

STATIC = Path(__file__).parent / "static"

_STYLE = """
:root{color-scheme:light}
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:40rem;margin:0 auto;
padding:1rem;color:#111;background:#fff;line-height:1.55;overflow-wrap:anywhere}
header{display:flex;justify-content:flex-end}a{color:#0645ad}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
label,legend{display:block;margin:.75rem 0 .25rem;font-weight:600}
input{font-size:1rem;padding:.6rem;width:100%;box-sizing:border-box;border:1px solid #555;border-radius:.3rem}
fieldset{border:0;padding:0;margin:0}fieldset label{font-weight:400;display:flex;gap:.5rem;align-items:center}
fieldset input{width:auto}
button{font-size:1rem;padding:.65rem 1rem;border-radius:.3rem;cursor:pointer;border:1px solid #0a5c2e;
background:#0a6b35;color:#fff;min-height:2.75rem}
button.secondary{background:#fff;color:#0a5c2e;margin:.25rem .5rem .25rem 0}
button[type=submit]{width:100%;margin-top:1rem}button:disabled{background:#555;border-color:#555}
.error{color:#b00020}.muted{color:#444}.description{white-space:pre-line}
.soldout{font-weight:700;color:#b00020;font-size:1.2rem}
ul.codes{list-style:none;padding:0}ul.codes li{margin:.5rem 0}
.code{display:block;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:1.15rem;background:#f1f1f1;
padding:.6rem;border-radius:.3rem;word-break:break-all}
#instructions{white-space:pre-wrap}[hidden]{display:none!important}
#total{font-size:1.1rem;margin:.75rem 0 0}#total-amount,.amount{font-size:1.3rem}
.qr-row{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
#qr svg{display:block;width:14rem;max-width:100%;height:auto;shape-rendering:crispEdges}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0}dt{color:#444}dd{margin:0}
.shop-head{display:flex;gap:.75rem;align-items:center}
#logo{width:3.5rem;height:3.5rem;object-fit:contain;border-radius:.3rem;flex:none}
.announcement{background:#fff8e1;border-left:4px solid #8a5a00;padding:.5rem .75rem;white-space:pre-line}
ul.products{list-style:none;padding:0;margin:0}
ul.products li{display:grid;grid-template-columns:1fr auto;gap:.15rem 1rem;align-items:baseline;padding:.6rem 0;
border-bottom:1px solid #ddd}ul.products a{font-weight:600}.product-price{font-weight:700}
.facts{grid-column:1/-1;display:flex;flex-wrap:wrap;gap:0 1rem}
.stock-out{color:#b00020;font-weight:700}.stock-in{color:#0a5c2e}
"""


def _script(*names: str) -> str:
    return "\n".join((STATIC / name).read_text() for name in names)


@cache  # the page's script and the style are constants: hashed once per container
def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PRODUCT_SCRIPT = _script("errors.js", "product.js", "lookup.js")
ORDER_SCRIPT = _script("errors.js", "order.js", "lookup.js")
LOOKUP_SCRIPT = _script("errors.js", "lookup.js")  # the shop's and "not found" pages: the look-up form only
DESCRIPTION_LENGTH = 160  # of a link preview's description


@dataclass(frozen=True)
class Page:
    html: str
    script: str
    connect: str = ""  # another origin the script may connect to (the order page's WebSocket API)
    images: str = ""  # another origin images may come from (the shop's logo)
    status: int = 200

    @property
    def headers(self) -> dict[str, str]:
        connect = f"'self' {self.connect}".strip()
        images = f"'self' {self.images}".strip()
        policy = (
            f"default-src 'none'; script-src {_source_hash(self.script)}; style-src {_source_hash(_STYLE)}; "
            f"connect-src {connect}; img-src {images}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
        return {
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            # Two years; browsers honour it over HTTPS only, so `make run` (plain http) is unaffected.
            "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
        }


def _page(
    lang: str,
    title: str,
    data: dict[str, str],
    body: str,
    script: str,
    connect: str = "",
    *,
    description: str = "",
    images: str = "",
    status: int = 200,
) -> Page:
    other = next(code for code in LANGUAGES if code != lang)
    # Link previews (chat apps, search engines) read these; merchant text, so escaped like the rest.
    preview = f'<meta property="og:title" content="{escape(title)}">' + (
        f'<meta name="description" content="{escape(description)}">'
        f'<meta property="og:description" content="{escape(description)}">'
        if description
        else ""
    )
    texts = json.dumps(TEXTS[lang], ensure_ascii=False).replace("<", "\\u003c")
    attributes = "".join(f' data-{name}="{escape(value)}"' for name, value in data.items())
    html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title>{preview}'
        f"<style>{_STYLE}</style></head><body>"
        f'<header><a id="lang-toggle" href="?lang={other}" hreflang="{other}" lang="{other}">'
        f"{escape(TEXTS[lang]['switch'])}</a></header>"
        f'<main id="page" data-lang="{lang}"{attributes}>{body}{_lookup(lang)}</main>'
        f'<script type="application/json" id="texts">{texts}</script>'
        f"<script>{script}</script></body></html>"
    )
    return Page(html=html, script=script, connect=connect, images=images, status=status)


def _summary(text: str) -> str:
    """Merchant text as one line of at most DESCRIPTION_LENGTH characters (a link preview's)."""
    line = " ".join(text.split())
    return line if len(line) <= DESCRIPTION_LENGTH else line[: DESCRIPTION_LENGTH - 1].rstrip() + "…"


def _lookup(lang: str) -> str:
    t = TEXTS[lang]
    return (
        f'<section aria-labelledby="lookup-title"><h2 id="lookup-title">{escape(t["lookup"])}</h2>'
        '<form id="lookup"><label for="lookup-email">'
        f'{escape(t["email"])}</label><input id="lookup-email" name="lookup-email" type="email" '
        'autocomplete="email" required><label for="lookup-order">'
        f'{escape(t["order_number"])}</label><input id="lookup-order" name="lookup-order" '
        'autocomplete="off" spellcheck="false" placeholder="ord_…">'
        f'<button type="submit" class="secondary">{escape(t["send_link"])}'
        '</button><p id="lookup-note" role="status"></p></form></section>'
    )


def _totals(product: Product, largest: int, lang: str) -> dict[str, list[str]]:
    """quantity -> [total, "quantity × unit price"] for every quantity the form takes, from the same
    rule the checkout charges by (wholesale tiers applied): the page shows the total before "buy"."""
    return {
        str(quantity): [
            money(product.total_for(quantity), lang),
            TEXTS[lang]["unit_times"].format(
                quantity=quantity, price=money(product.unit_price(quantity), lang)
            ),
        ]
        for quantity in range(product.min_per_order, largest + 1)
    }


def product_page(product: Product, available: int, providers: Sequence[str], lang: str) -> Page:
    t = TEXTS[lang]
    tiers = "".join(
        f"<li>{escape(t['each_from'].format(quantity=tier.min_quantity, price=money(tier.price, lang)))}</li>"
        for tier in product.price_tiers
    )
    largest = min(product.max_per_order, available)
    data = {"product-id": product.product_id, "min": str(product.min_per_order), "max": str(largest)}
    totals = _totals(product, largest, lang)
    first = totals.get(str(product.min_per_order), ["—", ""])
    if available <= 0:
        offer = f'<p class="soldout" id="soldout" role="status">{escape(t["sold_out"])}</p><p>{escape(t["sold_out_long"])}</p>'
    else:
        choices = "".join(
            f'<label><input type="radio" name="provider" value="{escape(name)}"{" checked" if n == 0 else ""}>'
            f"{escape(t.get('provider.' + name, name))}</label>"
            for n, name in enumerate(providers)
        )
        offer = (
            f'<p id="available">{escape(t["in_stock"].format(count=available))}</p>'
            f'<p id="delivery">{escape(t["instant"])}</p>'
            '<form id="buy" novalidate>'
            f'<label for="quantity">{escape(t["quantity"])}</label>'
            f'<input id="quantity" name="quantity" type="number" inputmode="numeric" '
            f'min="{product.min_per_order}" max="{largest}" '
            f'value="{product.min_per_order}" required>'
            f'<p id="total" aria-live="polite">{escape(t["total"])}: <strong id="total-amount">{escape(first[0])}</strong> '
            f'<span class="muted" id="total-detail">{escape(first[1])}</span></p>'
            f'<label for="email">{escape(t["email"])}</label>'
            '<input id="email" name="email" type="email" autocomplete="email" required>'
            f"<fieldset><legend>{escape(t['pay_with'])}</legend>{choices}</fieldset>"
            f'<button type="submit" id="pay">{escape(t["buy"])}</button>'
            '<p class="error" id="error" role="alert"></p></form>'
        )
    body = (
        f'<h1 id="name">{escape(product.name)}</h1>'
        f'<p class="description" id="description">{escape(product.description)}</p>'
        f'<p>{escape(t["price"])}: <strong id="price">{escape(money(product.price, lang))}</strong></p>'
        f"{f'<ul id=tiers>{tiers}</ul>' if tiers else ''}{offer}"
    )
    if available > 0:
        data["totals"] = json.dumps(totals, ensure_ascii=False)
    price = money(product.price, lang)
    description = _summary(
        f"{price} · {product.description}"
        if product.description.strip()
        else t["meta.product"].format(price=price)
    )
    return _page(lang, product.name, data, body, PRODUCT_SCRIPT, description=description)


def order_page(order_id: str, lang: str, websocket_url: str = "") -> Page:
    """The order page; with a WebSocket URL it watches the order there (docs/push.md), else it polls."""
    t = TEXTS[lang]
    body = (
        f'<h1>{escape(t["order"])} <span id="order-id">{escape(order_id)}</span></h1>'
        f'<p>{escape(t["status"])}: <strong id="status">{escape(t["loading"])}</strong></p>'
        '<p id="explain" role="status" aria-live="polite"></p>'
        f'<section id="qr-box" aria-labelledby="qr-title" hidden><h2 id="qr-title">{escape(t["scan"])}</h2>'
        f'<div class="qr-row"><div id="qr" role="img" aria-label="{escape(t["scan"])}"></div>'
        '<p><strong id="qr-provider"></strong><br><strong class="amount" id="qr-amount"></strong><br>'
        '<span class="muted" id="qr-note"></span></p></div></section>'
        f'<section id="summary" aria-labelledby="summary-title" hidden><h2 id="summary-title">{escape(t["summary"])}</h2>'
        f'<dl><dt>{escape(t["product"])}</dt><dd id="summary-product"></dd>'
        f'<dt>{escape(t["quantity"])}</dt><dd id="summary-quantity"></dd>'
        f'<dt>{escape(t["amount"])}</dt><dd id="summary-total"></dd></dl>'
        f'<p><a id="product-link" hidden>{escape(t["buy_again"])}</a></p></section>'
        f'<section id="delivered" hidden><h2>{escape(t["codes"])}</h2><ul class="codes" id="codes"></ul>'
        '<div id="code-actions"></div>'
        f'<div id="instructions-box" hidden><h2>{escape(t["instructions"])}</h2><p id="instructions"></p></div>'
        f'</section><h2>{escape(t["timeline"])}</h2><ol id="events"></ol>'
    )
    data = {
        "order-id": order_id,
        "money": json.dumps(money_format()),
        **({"ws-url": websocket_url} if websocket_url else {}),
    }
    return _page(lang, f"{t['order']} {order_id}", data, body, ORDER_SCRIPT, connect=_origin(websocket_url))


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL (the settings allow only plain ws:// and wss:// ones), or ""."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if url else ""


def shop_page(listing: Listing, lang: str) -> Page:
    """The shop's listing: its name, logo, announcement and contact, then its products by category
    (name, price, stock, delivery), each linking to its product page."""
    t, shop = TEXTS[lang], listing.shop
    logo_origin = _image_origin(shop.logo_url or "")
    head = (
        f'<img id="logo" src="{escape(shop.logo_url or "")}" alt="{escape(t["shop.logo"].format(shop=shop.name))}" '
        'width="56" height="56">'
        if logo_origin
        else ""
    )
    about = ""
    if shop.announcement:
        about += (
            f'<section class="announcement" id="announcement" aria-label="{escape(t["shop.announcement"])}">'
            f"{escape(shop.announcement)}</section>"
        )
    if shop.contact:
        about += f'<p id="contact">{escape(t["shop.contact"])}: {escape(shop.contact)}</p>'
    if shop.support_email:
        about += (
            f'<p id="support">{escape(t["shop.support"])}: '
            f'<a href="mailto:{escape(shop.support_email)}">{escape(shop.support_email)}</a></p>'
        )
    groups = "".join(
        f'<section class="category" aria-labelledby="category-{n}"><h2 id="category-{n}">'
        f"{escape(group.category if group.category is not None else t['shop.other'])}</h2>"
        f'<ul class="products">{"".join(_offer(offer, lang) for offer in group.offers)}</ul></section>'
        for n, group in enumerate(listing.groups)
    )
    empty = f'<p id="empty">{escape(t["shop.empty"])}</p>'
    body = (
        f'<div class="shop-head">{head}<h1 id="shop-name">{escape(shop.name)}</h1></div>{about}'
        f'<div id="products">{groups or empty}</div>'
    )
    description = _summary(shop.announcement or t["meta.shop"].format(shop=shop.name))
    data = {"merchant-id": listing.merchant_id}
    return _page(lang, shop.name, data, body, LOOKUP_SCRIPT, description=description, images=logo_origin)


def _offer(offer: Offer, lang: str) -> str:
    t, product = TEXTS[lang], offer.product
    stock = (
        f'<span class="stock stock-in">{escape(t["in_stock"].format(count=offer.available))}</span>'
        if offer.available > 0
        else f'<span class="stock stock-out">{escape(t["sold_out"])}</span>'
    )
    return (
        f'<li class="product" data-product-id="{escape(product.product_id)}">'
        f'<a href="/p/{escape(product.product_id)}">{escape(product.name)}</a>'
        f'<span class="product-price">{escape(money(product.price, lang))}</span><span class="facts">{stock}'
        f'<span class="delivery muted">{escape(t["shop.instant"])}</span></span></li>'
    )


def no_shop_page(lang: str) -> Page:
    """`GET /` when DEFAULT_SHOP names no shop."""
    t = TEXTS[lang]
    body = f'<h1>{escape(t["shop.none_title"])}</h1><p id="no-shop">{escape(t["shop.none"])}</p>'
    return _page(lang, t["shop.none_title"], {}, body, LOOKUP_SCRIPT)


def not_found_page(lang: str, what: str) -> Page:
    """404 in the page's language: `what` is product, shop or order."""
    t = TEXTS[lang]
    body = (
        f'<h1>{escape(t["not_found.title"])}</h1><p id="not-found">{escape(t["not_found." + what])}</p>'
        f'<p><a href="/" id="home">{escape(t["home"])}</a></p>'
    )
    return _page(lang, t["not_found.title"], {}, body, LOOKUP_SCRIPT, status=404)


# A host a Content-Security-Policy source can name as it is: letters, digits, dots and hyphens.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _image_origin(url: str) -> str:
    """https://host[:port] of the shop's logo, the one image origin its page allows; "" (no logo shown)
    for a URL whose host a policy could not name exactly (the settings take https URLs only)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.scheme != "https" or parts.username is not None or not _PLAIN_HOST.fullmatch(host):
        return ""
    return f"https://{host}" + (f":{port}" if port is not None else "")
