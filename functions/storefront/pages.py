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
from shared.buyer_input import InputField
from shared.products import Product
from shared.shops import ShopSettings

STATIC = Path(__file__).parent / "static"

_STYLE = """
:root{color-scheme:light;--ink:#14171c;--muted:#525a67;--line:#d8dde5;--bg:#f1f3f6;--card:#fff;--brand:#0a6b47;
--brand-ink:#07543a;--brand-soft:#e3f2ea;--bad:#b42318;--bad-soft:#fdeceb;--warn:#744500;--warn-soft:#fff1d6;
--info:#1d4ed8;--info-ink:#1e3a8a;--info-soft:#e7eeff;--price:#b3261e;--focus:#1d4ed8;--r:.75rem}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei",
"Noto Sans CJK SC","WenQuanYi Zen Hei",sans-serif;color:var(--ink);background:var(--bg);overflow-wrap:anywhere}
a{color:var(--info)}:focus-visible{outline:3px solid var(--focus);outline-offset:2px}[hidden]{display:none!important}
.bar{background:var(--card);border-bottom:1px solid var(--line);box-shadow:0 1px 2px rgb(16 24 40/.05)}
.bar-in,main{max-width:68rem;margin:0 auto;padding-left:1rem;padding-right:1rem}
.bar-in{display:flex;align-items:center;gap:.75rem;min-height:3.75rem}
.brand{display:flex;align-items:center;gap:.6rem;min-width:0;color:var(--ink);text-decoration:none;font-weight:700;
font-size:1.05rem;line-height:1.3}.brand h1{font-size:1.2rem;margin:0}a.brand:hover span{text-decoration:underline}
#logo,.brand img{width:2.5rem;height:2.5rem;object-fit:contain;border-radius:.5rem;flex:none;background:#fff}
.mark{display:grid;place-items:center;width:2.5rem;height:2.5rem;flex:none;border-radius:.5rem;background:var(--brand);
color:#fff;font-weight:800;font-size:1.2rem}
.brand .i{width:1.25rem;height:1.25rem;color:var(--brand)}
#lang-toggle{margin-left:auto;flex:none;padding:.3rem .8rem;border:1px solid var(--line);border-radius:999px;
color:var(--ink);text-decoration:none;font-size:.9rem;min-height:2.25rem;display:inline-flex;align-items:center}
#lang-toggle:hover{border-color:var(--muted)}
main{padding-top:1.25rem;padding-bottom:2.5rem}
h1{font-size:1.5rem;line-height:1.3;margin:0 0 .5rem}h2{font-size:1.1rem;line-height:1.35;margin:0 0 .75rem}
p{margin:0 0 .75rem}.muted{color:var(--muted)}.error{color:var(--bad);font-weight:600;background:var(--bad-soft);
border-radius:.5rem;padding:.6rem .8rem;margin:.75rem 0 0}.error:empty{display:none}
.description{white-space:pre-line}.description:empty{display:none}
.card{background:var(--card);border:1px solid var(--line);border-radius:var(--r);padding:1.25rem;margin:0 0 1rem;
box-shadow:0 1px 3px rgb(16 24 40/.06)}.card>:last-child{margin-bottom:0}
.cols{display:grid;gap:0 1rem}.cols>div{min-width:0}
@media (min-width:50rem){.cols{grid-template-columns:minmax(0,3fr) minmax(0,2fr);align-items:start}}
.i{width:1.1rem;height:1.1rem;flex:none;fill:currentColor}
label,legend{display:block;margin:.9rem 0 .35rem;font-weight:600}
input,select{font:inherit;padding:.6rem .75rem;width:100%;border:1px solid #8a929f;border-radius:.5rem;background:#fff;
color:var(--ink);min-height:2.75rem}input:hover,select:hover{border-color:var(--muted)}
[aria-invalid=true]{border-color:var(--bad);box-shadow:0 0 0 1px var(--bad)}
.buyer-field label{margin:.75rem 0 .35rem;font-weight:500}.buyer-field label:first-child{font-weight:600}
.field-error{color:var(--bad);font-weight:600;font-size:.9rem;margin:.35rem 0 0}.field-error:empty{display:none}
.field-note{font-size:.85rem;margin:.5rem 0 0}
fieldset.buyer-input{margin:1.1rem 0 0;padding:0 .9rem .9rem;border:1px solid var(--line);border-radius:.5rem}
fieldset.buyer-input legend{padding:0 .35rem;margin:0 0 0 -.35rem}
fieldset{border:0;padding:0;margin:.9rem 0 0;min-width:0}fieldset legend{margin:0 0 .35rem;padding:0}
button{font:inherit;font-weight:600;padding:.65rem 1.1rem;border-radius:.5rem;cursor:pointer;border:1px solid var(--brand);
background:var(--brand);color:#fff;min-height:2.75rem}button:hover{background:var(--brand-ink)}
button.secondary{background:#fff;color:var(--brand-ink)}button.secondary:hover{background:var(--brand-soft)}
button:disabled{background:#5f6672;border-color:#5f6672;color:#fff;cursor:wait}
.badges,.facts{display:flex;flex-wrap:wrap;gap:.4rem;margin:0 0 .75rem}
.badge,.stock,.delivery{display:inline-flex;align-items:center;gap:.35rem;padding:.1rem .6rem;border-radius:999px;
font-size:.85rem;font-weight:600;line-height:1.6;white-space:nowrap}
.stock::before,.delivery::before{content:"";width:.45rem;height:.45rem;border-radius:50%;background:currentColor}
.stock-in{background:var(--brand-soft);color:var(--brand-ink)}.stock-out{background:var(--bad-soft);color:var(--bad)}
.delivery,.delivery.muted{background:var(--info-soft);color:var(--info-ink)}
.price-line{display:flex;align-items:baseline;gap:.6rem;flex-wrap:wrap}
#price{font-size:1.75rem;color:var(--price);font-weight:800;line-height:1.2}
#tiers{margin:0 0 .75rem;padding:.6rem .9rem .6rem 2rem;background:var(--warn-soft);border-radius:.5rem;color:var(--warn)}
.soldout{font-weight:800;color:var(--bad);font-size:1.25rem;margin:0 0 .35rem}
.checkout h2{margin-bottom:.25rem}
.pay-options label{display:flex;gap:.6rem;align-items:center;font-weight:500;margin:0 0 .5rem;padding:.6rem .75rem;
border:1px solid var(--line);border-radius:.5rem;cursor:pointer;min-height:2.75rem}
.pay-options label:has(input:checked){border-color:var(--brand);background:var(--brand-soft);font-weight:600}
.pay-options input{width:1.1rem;height:1.1rem;min-height:0;margin:0;accent-color:var(--brand);flex:none}
#total{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem .6rem;margin:1rem 0 0;padding:.85rem 1rem;
border-radius:.5rem;background:var(--bg);min-height:3.6rem}
.total-label{font-weight:600;margin-right:auto}#total-amount{font-size:1.6rem;color:var(--price);line-height:1.2}
#total-detail{flex-basis:100%;text-align:right;font-size:.9rem}
#buy button[type=submit]{width:100%;margin-top:1rem;font-size:1.1rem;min-height:3.1rem}
.hints{list-style:none;padding:0;margin:1rem 0 0;display:grid;gap:.4rem;font-size:.9rem;color:var(--muted)}
.hints li{display:flex;gap:.5rem;align-items:flex-start}.hints .i{margin-top:.2rem;color:var(--brand)}
.trust{list-style:none;padding:0;margin:0 0 1.25rem;display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;font-size:.9rem;
color:var(--muted)}.trust li{display:flex;gap:.4rem;align-items:center}.trust .i{color:var(--brand)}
.help p{margin:0 0 .35rem}
.shop-info{display:grid;gap:.75rem}
.announcement{background:var(--warn-soft);border-left:4px solid #b7791f;border-radius:.5rem;padding:.65rem .9rem;
white-space:pre-line;color:#4a2f00}
.contacts{display:flex;flex-wrap:wrap;gap:.25rem 1.5rem}.contacts p{margin:0}
.category{margin:0 0 1.5rem}
.category h2{display:flex;align-items:center;gap:.5rem;font-size:1.05rem}
.category h2::before{content:"";width:.25rem;height:1.1rem;border-radius:2px;background:var(--brand)}
ul.products{list-style:none;margin:0;padding:0;display:grid;gap:.75rem;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr))}
li.product{position:relative;display:flex;flex-direction:column;gap:.45rem;background:var(--card);border:1px solid var(--line);
border-radius:var(--r);padding:1rem;box-shadow:0 1px 3px rgb(16 24 40/.06);min-height:8.5rem}
li.product:hover{border-color:var(--brand);box-shadow:0 4px 14px rgb(16 24 40/.1)}
li.product:focus-within{outline:3px solid var(--focus);outline-offset:2px}
li.product a{font-weight:700;font-size:1.05rem;color:var(--ink);text-decoration:none;line-height:1.35}
li.product a::after{content:"";position:absolute;inset:0;border-radius:var(--r)}li.product a:focus-visible{outline:0}
.product-price{font-size:1.3rem;font-weight:800;color:var(--price);margin-top:auto}
li.product .facts{margin:0}
li.product:has(.stock-out){background:#f7f8fa}li.product:has(.stock-out) .product-price{color:var(--muted)}
.pager{display:flex;flex-wrap:wrap;gap:.75rem;justify-content:center;margin:0 0 1.5rem}
.pager a{display:inline-flex;align-items:center;min-height:2.75rem;padding:.5rem 1.25rem;border:1px solid var(--brand);
border-radius:.5rem;background:#fff;color:var(--brand-ink);font-weight:600;text-decoration:none}
.pager a:hover{background:var(--brand-soft)}
.order-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem .6rem;margin:0 0 1rem}.order-head h1{margin:0}
#order-id{font:600 .95rem ui-monospace,Menlo,Consolas,monospace;color:var(--muted)}
.status-line{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem}
#status{display:inline-block;padding:.2rem .8rem;border-radius:999px;background:#eceff3;font-size:1rem}
body[data-status=PENDING_PAYMENT] #status,body[data-status=IN_REVIEW] #status,body[data-status=CLAIMED] #status{
background:var(--warn-soft);color:var(--warn)}
body[data-status=PAID] #status,body[data-status=DELIVERED] #status,body[data-status=REPLACED] #status{
background:var(--brand-soft);color:var(--brand-ink)}
body[data-status=REFUNDING] #status,body[data-status=REFUNDED] #status{background:var(--info-soft);color:var(--info-ink)}
body[data-status=EXPIRED] #status{background:#e6e8ec;color:#3b414c}
.steps{list-style:none;display:flex;margin:1.1rem 0 1rem;padding:0;counter-reset:step}
.steps li{flex:1;position:relative;text-align:center;font-size:.875rem;color:var(--muted);padding-top:2.2rem}
.steps li::before{counter-increment:step;content:counter(step);position:absolute;top:0;left:50%;z-index:1;
margin-left:-.9rem;width:1.8rem;height:1.8rem;border-radius:50%;border:2px solid var(--line);background:#fff;
font-weight:700;line-height:1.55rem;text-align:center;color:var(--muted)}
.steps li+li::after{content:"";position:absolute;top:.85rem;right:50%;width:100%;height:2px;background:var(--line)}
body[data-status] .steps [data-step=placed],
body:is([data-status=PAID],[data-status=IN_REVIEW]) .steps :is([data-step=placed],[data-step=paid]),
body:is([data-status=DELIVERED],[data-status=CLAIMED],[data-status=REPLACED]) .steps li{color:var(--brand-ink);font-weight:600}
body[data-status] .steps [data-step=placed]::before,
body:is([data-status=PAID],[data-status=IN_REVIEW]) .steps :is([data-step=placed],[data-step=paid])::before,
body:is([data-status=DELIVERED],[data-status=CLAIMED],[data-status=REPLACED]) .steps li::before{
content:"\\2713";background:var(--brand);border-color:var(--brand);color:#fff}
body[data-status] .steps [data-step=placed]+li::after,
body:is([data-status=PAID],[data-status=IN_REVIEW]) .steps [data-step=delivered]::after,
body:is([data-status=DELIVERED],[data-status=CLAIMED],[data-status=REPLACED]) .steps li::after{background:var(--brand)}
body[data-status=PENDING_PAYMENT] .steps [data-step=paid]::before,
body:is([data-status=PAID],[data-status=IN_REVIEW]) .steps [data-step=delivered]::before{border-color:var(--brand);
color:var(--brand-ink)}
body:is([data-status=EXPIRED],[data-status=REFUNDING],[data-status=REFUNDED]) .steps{display:none}
#explain{margin:0}#explain:empty{display:none}
.pay-panel{border:2px solid var(--brand);text-align:center}
.pay-head{display:flex;justify-content:space-between;align-items:center;gap:.5rem;flex-wrap:wrap;text-align:left;
border-bottom:1px solid var(--line);padding-bottom:.75rem;margin-bottom:.75rem}.pay-head h2{margin:0}
#qr-provider{color:var(--brand-ink)}.pay-head span{display:inline-flex;align-items:center;gap:.35rem}
.pay-head .i{color:var(--brand)}
.amount{display:block;font-size:2rem;font-weight:800;color:var(--price);line-height:1.2;min-height:2.4rem;
margin:.25rem 0 .75rem}
.qr-frame{display:inline-block;padding:.5rem;border:1px solid var(--line);border-radius:.5rem;background:#fff}
#qr{width:14rem;max-width:100%;aspect-ratio:1}
#qr svg{display:block;width:100%;height:auto;shape-rendering:crispEdges}
#qr-note{margin:.75rem auto 0;max-width:24rem;font-size:.95rem;min-height:3em}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem;margin:0 0 .75rem}dt{color:var(--muted)}dd{margin:0;font-weight:600}
#summary-total{color:var(--price)}
ul.codes{list-style:none;padding:0;margin:0 0 .75rem;display:grid;gap:.6rem}
ul.codes li{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;padding:.5rem;border:1px dashed var(--brand);
border-radius:.5rem;background:var(--brand-soft)}
.code{flex:1 1 9rem;font:600 1.1rem/1.4 ui-monospace,Menlo,Consolas,monospace;background:#fff;padding:.55rem .7rem;
border-radius:.35rem;word-break:break-all;color:var(--ink)}
pre.license{flex:1 1 100%;margin:0;white-space:pre-wrap;word-break:break-all;font:600 .9rem/1.5 ui-monospace,Menlo,
Consolas,monospace;background:#fff;padding:.6rem .7rem;border-radius:.35rem;color:var(--ink)}
#code-actions{display:flex;flex-wrap:wrap;gap:.5rem}#delivered h2{color:var(--brand-ink)}
#instructions{white-space:pre-wrap}
#delivered .part>:last-child{margin-bottom:0}.part:not([hidden])~.part:not([hidden]){margin-top:1rem;padding-top:1rem;border-top:1px solid var(--line)}
#delivered-text{white-space:pre-wrap;margin:0 0 .75rem;padding:.75rem;border-radius:.5rem;background:var(--bg)}
.receipt{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:0 0 .75rem}
#events{list-style:none;margin:0;padding:0 0 0 1.1rem;border-left:2px solid var(--line)}
#events li{position:relative;margin:0 0 .6rem;font-size:.95rem}
#events li::before{content:"";position:absolute;left:-1.5rem;top:.45rem;width:.7rem;height:.7rem;border-radius:50%;
background:var(--brand);border:2px solid #fff}#events time{color:var(--muted)}
.private{display:flex;gap:.5rem;align-items:flex-start;font-size:.9rem;color:var(--muted)}.private .i{margin-top:.2rem}
.fields{display:grid;gap:0 1rem}.fields label{margin-top:.5rem}@media (min-width:50rem){.fields{grid-template-columns:1fr 1fr}}
.lookup button{margin-top:1rem}#lookup-note{margin:.75rem 0 0}#lookup-note:empty{display:none}
.notice{max-width:32rem;margin:2rem auto;text-align:center;padding:2rem 1.5rem}
.notice .big{font-size:3rem;font-weight:800;color:var(--muted);line-height:1;margin:0 0 .75rem}
.button-link{display:inline-flex;align-items:center;min-height:2.75rem;padding:.5rem 1.25rem;border-radius:.5rem;
background:var(--brand);color:#fff;font-weight:600;text-decoration:none}.button-link:hover{background:var(--brand-ink)}
@media (max-width:30rem){.card{padding:1rem}h1{font-size:1.35rem}.steps li{font-size:.8rem}.brand h1{font-size:1.05rem}
#lang-toggle{padding:.3rem .6rem}}
"""

# Small icons drawn inline (no image request, nothing for the policy to allow): a bolt, a lock, a shield, a letter.
_ICONS = {
    "bolt": "M13 2 4 14h7l-1 8 9-12h-7l1-8z",
    "lock": "M18 8h-1V6A5 5 0 0 0 7 6v2H6a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V10a2 2 0 0 0-2-2zM9 6a3 3 0 0 1 6 "
    "0v2H9V6z",
    "shield": "M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3zm-1.2 14.2-3.5-3.5 1.4-1.4 2.1 2.1 4.6-4.6 1.4 "
    "1.4-6 6z",
    "mail": "M20 4H4a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V6a2 2 0 0 0-2-2zm0 4-8 5-8-5V6l8 5 8-5v2z",
}


def _icon(name: str) -> str:
    return f'<svg class="i" viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="{_ICONS[name]}"/></svg>'


def _script(*names: str) -> str:
    return "\n".join((STATIC / name).read_text() for name in names)


@cache  # the page's script and the style are constants: hashed once per container
def _source_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PRODUCT_SCRIPT = _script("errors.js", "qr.js", "device.js", "product.js", "lookup.js")
ORDER_SCRIPT = _script("errors.js", "qr.js", "order.js", "lookup.js")
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
    brand: str = "",
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
        f'<header class="bar"><div class="bar-in">{brand}<a id="lang-toggle" href="?lang={other}" '
        f'hreflang="{other}" lang="{other}">{escape(TEXTS[lang]["switch"])}</a></div></header>'
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
        f'<section class="card lookup" aria-labelledby="lookup-title"><h2 id="lookup-title">{escape(t["lookup"])}</h2>'
        '<form id="lookup"><div class="fields"><div><label for="lookup-email">'
        f'{escape(t["email"])}</label><input id="lookup-email" name="lookup-email" type="email" '
        'autocomplete="email" required></div><div><label for="lookup-order">'
        f'{escape(t["order_number"])}</label><input id="lookup-order" name="lookup-order" '
        'autocomplete="off" spellcheck="false" placeholder="ord_…"></div></div>'
        f'<button type="submit" class="secondary">{escape(t["send_link"])}'
        '</button><p id="lookup-note" role="status"></p></form></section>'
    )


def _logo(shop: ShopSettings, lang: str) -> tuple[str, str]:
    """The shop's logo (or its initial on a coloured square) and the one image origin it needs ("" if none)."""
    origin = _image_origin(shop.logo_url or "")
    if not origin:
        return f'<span class="mark" aria-hidden="true">{escape(shop.name[:1].upper())}</span>', ""
    alt = escape(TEXTS[lang]["shop.logo"].format(shop=shop.name))
    return f'<img id="logo" src="{escape(shop.logo_url or "")}" alt="{alt}" width="40" height="40">', origin


def _contacts(shop: ShopSettings, lang: str) -> str:
    """The shop's contact and support e-mail, as its settings give them ("" for neither)."""
    t, found = TEXTS[lang], ""
    if shop.contact:
        found += f'<p id="contact">{escape(t["shop.contact"])}: {escape(shop.contact)}</p>'
    if shop.support_email:
        found += (
            f'<p id="support">{escape(t["shop.support"])}: '
            f'<a href="mailto:{escape(shop.support_email)}">{escape(shop.support_email)}</a></p>'
        )
    return found


def _secure_by(providers: Sequence[str], lang: str) -> str:
    """ "Secure payment by WeChat Pay, Alipay": the providers this shop takes payments with."""
    t = TEXTS[lang]
    names = [t.get("provider." + name, name) for name in providers]
    return t["secure_by"].format(providers=t["list_separator"].join(names))


def _delivery(product: Product, lang: str, *, long: bool = False) -> str:
    """How the product reaches the buyer, as its badge (or the checkout's hint, `long`) says it: codes
    from stock, top-ups, codes made per order and license keys at once, a hand-fulfilled product within
    the time its shop promises."""
    t = TEXTS[lang]
    if product.delivery == "manual" and product.manual is not None:
        key = "delivery.manual_long" if long else "delivery.manual"
        return t[key].format(minutes=product.manual.promise_minutes)
    if product.delivery in ("topup", "generated", "license"):
        key = "delivery." + product.delivery
        return t[key + "_long" if long else key]
    return t["instant" if long else "shop.instant"]


def _private(product: Product, lang: str) -> str:
    """Who sees what the order delivers: the codes, a top-up's receipt, what the shop sends by hand."""
    t = TEXTS[lang]
    return t["trust.private" if product.delivery == "stock" else "trust.private." + product.delivery]


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


def product_page(
    product: Product,
    available: int | None,
    providers: Sequence[str],
    lang: str,
    *,
    shop: ShopSettings | None = None,
) -> Page:
    """The product page: what it is (price, tiers, stock, delivery) beside the checkout (quantity, the
    fields the product asks for, the total, e-mail, payment); the shop's name, logo and contact when its
    settings are known. `available` None: a product whose stock is not counted (top-up, manual), never
    sold out."""
    t = TEXTS[lang]
    tiers = "".join(
        f"<li>{escape(t['each_from'].format(quantity=tier.min_quantity, price=money(tier.price, lang)))}</li>"
        for tier in product.price_tiers
    )
    on_sale = available is None or available > 0
    largest = product.max_per_order if available is None else min(product.max_per_order, available)
    data = {"product-id": product.product_id, "min": str(product.min_per_order), "max": str(largest)}
    totals = _totals(product, largest, lang)
    first = totals.get(str(product.min_per_order), ["—", ""])
    if available is None:
        stock = ""
    elif available > 0:
        stock = f'<span class="stock stock-in" id="available">{escape(t["in_stock"].format(count=available))}</span>'
    else:
        stock = f'<span class="stock stock-out">{escape(t["sold_out"])}</span>'
    if not on_sale:
        offer = (
            f'<p class="soldout" id="soldout" role="status">{escape(t["sold_out"])}</p>'
            f'<p class="muted">{escape(t["sold_out_long"])}</p>'
        )
    else:
        choices = "".join(
            f'<label><input type="radio" name="provider" value="{escape(name)}"{" checked" if n == 0 else ""}>'
            f"{escape(t.get('provider.' + name, name))}</label>"
            for n, name in enumerate(providers)
        )
        offer = (
            f'<h2 id="checkout-title">{escape(t["checkout"])}</h2>'
            '<form id="buy" novalidate>'
            f'<label for="quantity">{escape(t["quantity"])}</label>'
            f'<input id="quantity" name="quantity" type="number" inputmode="numeric" '
            f'min="{product.min_per_order}" max="{largest}" '
            f'value="{product.min_per_order}" required>'
            f"{_buyer_fields(product, lang)}"
            f'<label for="email">{escape(t["email"])}</label>'
            '<input id="email" name="email" type="email" autocomplete="email" required>'
            f'<fieldset class="pay-options"><legend>{escape(t["pay_with"])}</legend>{choices}</fieldset>'
            f'<div id="total" aria-live="polite"><span class="total-label">{escape(t["total"])}</span>'
            f'<strong id="total-amount">{escape(first[0])}</strong>'
            f'<span class="muted" id="total-detail">{escape(first[1])}</span></div>'
            f'<button type="submit" id="pay">{escape(t["buy"])}</button>'
            '<p class="error" id="error" role="alert"></p></form>'
            f'<ul class="hints"><li id="delivery">{_icon("bolt")}<span>{escape(_delivery(product, lang, long=True))}</span></li>'
            + (
                f"<li>{_icon('lock')}<span>{escape(_secure_by(providers, lang))}</span></li>"
                if providers
                else ""
            )
            + f"<li>{_icon('shield')}<span>{escape(_private(product, lang))}</span></li></ul>"
        )
    brand, images = "", ""
    help_box = ""
    if shop is not None:
        mark, images = _logo(shop, lang)
        brand = (
            f'<a class="brand" id="shop-link" href="/s/{escape(product.merchant_id)}">{mark}'
            f"<span>{escape(shop.name)}</span></a>"
        )
        if contacts := _contacts(shop, lang):
            help_box = (
                f'<section class="card help" aria-labelledby="help-title"><h2 id="help-title">'
                f"{escape(t['help'])}</h2>{contacts}</section>"
            )
    about = (
        f'<section class="card product-info"><h1 id="name">{escape(product.name)}</h1>'
        f'<div class="badges">{stock}<span class="delivery">{escape(_delivery(product, lang))}</span></div>'
        f'<p class="price-line"><span class="muted">{escape(t["price"])}</span>'
        f'<strong id="price">{escape(money(product.price, lang))}</strong></p>'
        f"{f'<ul id=tiers>{tiers}</ul>' if tiers else ''}"
        f'<p class="description" id="description">{escape(product.description)}</p></section>'
    )
    body = (
        f'<div class="cols"><div>{about}{help_box}</div>'
        f'<div><section class="card checkout" aria-label="{escape(t["checkout"])}">{offer}</section></div></div>'
    )
    if on_sale:
        data["totals"] = json.dumps(totals, ensure_ascii=False)
    price = money(product.price, lang)
    if product.description.strip():
        description = _summary(f"{price} · {product.description}")
    elif product.delivery == "stock":
        description = _summary(t["meta.product"].format(price=price))
    else:
        description = _summary(f"{price} · {_delivery(product, lang, long=True)}")
    return _page(
        lang, product.name, data, body, PRODUCT_SCRIPT, brand=brand, description=description, images=images
    )


def _buyer_fields(product: Product, lang: str) -> str:
    """The fields the product asks the buyer for (shared/buyer_input.py), labelled in the page's language,
    each with its error line; a `confirm` field is asked twice. The checkout checks every value again."""
    if not product.buyer_input:
        return ""
    t, fields = TEXTS[lang], ""
    for field in product.buyer_input:
        label = field.label["zh-CN" if lang == "zh-CN" else "en"]  # both are there, by the model's rule
        control = _control(field, lang, f"field-{field.name}", f'data-field="{field.name}"')
        if field.confirm and field.type != "select":
            again = escape(t["input.again"].format(label=label))
            control += f'<label for="field-{field.name}-again">{again}</label>' + _control(
                field, lang, f"field-{field.name}-again", f'data-again="{field.name}"'
            )
        fields += (
            f'<div class="buyer-field"><label for="field-{field.name}">{escape(label)}</label>{control}'
            f'<p class="field-error" id="error-{field.name}" role="alert"></p></div>'
        )
    return (
        f'<fieldset class="buyer-input" id="buyer-input"><legend>{escape(t["input." + product.delivery])}</legend>'
        f'{fields}<p class="muted field-note">{escape(t["input.private"])}</p></fieldset>'
    )


# How each type of field is typed: the keyboard a phone shows, and what the browser checks.
_INPUT_KINDS = {
    "text": 'type="text"',
    "number": 'type="text" inputmode="numeric"',  # digits, kept as typed (no spinner, no leading zeros lost)
    "email": 'type="email"',
    "phone": 'type="tel"',
}


def _control(field: InputField, lang: str, control_id: str, names: str) -> str:
    """One field's input (or select, with its options), its error line named for assistive technology."""
    common = f'id="{control_id}" {names} data-type="{field.type}" aria-describedby="error-{field.name}"'
    common += " required" if field.required else ""
    if field.type == "select":
        options = "".join(f'<option value="{escape(o)}">{escape(o)}</option>' for o in field.options)
        return f'<select {common}><option value="">{escape(TEXTS[lang]["input.choose"])}</option>{options}</select>'
    # The shop's pattern, which the browser checks too where its regex syntax reads it alike.
    pattern = f' pattern="{escape(field.pattern)}"' if field.pattern is not None else ""
    return (
        f'<input {common} {_INPUT_KINDS[field.type]} maxlength="{field.max_length}"{pattern} '
        'autocomplete="off" spellcheck="false">'
    )


def order_page(order_id: str, lang: str, websocket_url: str = "") -> Page:
    """The order page; with a WebSocket URL it watches the order there (docs/push.md), else it polls."""
    t = TEXTS[lang]
    steps = "".join(
        f'<li data-step="{step}">{escape(t["step." + step])}</li>' for step in ("placed", "paid", "delivered")
    )
    status = (
        '<section class="card" aria-labelledby="status-label">'
        f'<p class="status-line"><span id="status-label">{escape(t["status"])}</span>'
        f'<strong id="status">{escape(t["loading"])}</strong></p>'
        f'<ol class="steps" aria-label="{escape(t["progress"])}">{steps}</ol>'
        '<p id="explain" role="status" aria-live="polite"></p></section>'
    )
    qr = (
        f'<section class="card pay-panel" id="qr-box" aria-labelledby="qr-title" hidden>'
        f'<div class="pay-head"><h2 id="qr-title">{escape(t["scan"])}</h2>'
        f'<span class="muted">{_icon("lock")}<strong id="qr-provider"></strong></span></div>'
        '<strong class="amount" id="qr-amount"></strong>'
        f'<div class="qr-frame"><div id="qr" role="img" aria-label="{escape(t["scan"])}"></div></div>'
        '<p class="muted" id="qr-note"></p></section>'
    )
    delivered = (  # a top-up's receipt, what the merchant wrote (manual), the codes; then the instructions
        '<section class="card" id="delivered" hidden>'
        f'<div class="part" id="receipt-box" hidden><h2>{escape(t["receipt"])}</h2><p class="receipt">'
        '<code class="code" id="receipt"></code></p></div>'
        f'<div class="part" id="text-box" hidden><h2>{escape(t["fulfilment"])}</h2><p id="delivered-text"></p></div>'
        f'<div class="part" id="codes-box" hidden><h2 id="codes-title">{escape(t["codes"])}</h2><ul class="codes" id="codes"></ul>'
        '<div id="code-actions"></div></div>'
        f'<div class="part" id="instructions-box" hidden><h2>{escape(t["instructions"])}</h2><p id="instructions"></p></div>'
        "</section>"
    )
    summary = (
        # Shown (with dashes) before the order is read, so the page does not jump when it is.
        f'<section class="card" id="summary" aria-labelledby="summary-title">'
        f'<h2 id="summary-title">{escape(t["summary"])}</h2>'
        f'<dl><dt>{escape(t["product"])}</dt><dd id="summary-product">—</dd>'
        f'<dt>{escape(t["quantity"])}</dt><dd id="summary-quantity">—</dd>'
        f'<dt>{escape(t["amount"])}</dt><dd id="summary-total">—</dd></dl>'
        f'<p><a id="product-link" hidden>{escape(t["buy_again"])}</a></p></section>'
    )
    timeline = (
        f'<section class="card" aria-labelledby="timeline-title"><h2 id="timeline-title">{escape(t["timeline"])}</h2>'
        '<ol id="events"></ol></section>'
    )
    body = (
        f'<div class="order-head"><h1>{escape(t["order"])}</h1><span id="order-id">{escape(order_id)}</span></div>'
        f'<div class="cols"><div>{status}{qr}{delivered}</div><div>{summary}{timeline}'
        f'<p class="private">{_icon("shield")}<span>{escape(t["private"])}</span></p></div></div>'
    )
    data = {
        "order-id": order_id,
        "money": json.dumps(money_format()),
        **({"ws-url": websocket_url} if websocket_url else {}),
    }
    brand = f'<span class="brand">{_icon("lock")}<span>{escape(t["order_page"])}</span></span>'
    return _page(
        lang,
        f"{t['order']} {order_id}",
        data,
        body,
        ORDER_SCRIPT,
        connect=_origin(websocket_url),
        brand=brand,
    )


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL (the settings allow only plain ws:// and wss:// ones), or ""."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if url else ""


def shop_page(listing: Listing, lang: str, path: str = "", providers: Sequence[str] = ()) -> Page:
    """The shop's listing: its name, logo, announcement and contact, then a page of its products by
    category (name, price, stock, delivery), each linking to its product page, and a link to the next
    page when there is one (`path` is the page's own, for the link back to the newest)."""
    t, shop = TEXTS[lang], listing.shop
    mark, logo_origin = _logo(shop, lang)
    brand = f'<div class="brand">{mark}<h1 id="shop-name">{escape(shop.name)}</h1></div>'
    about = ""
    if shop.announcement:
        about += (
            f'<section class="announcement" id="announcement" aria-label="{escape(t["shop.announcement"])}">'
            f"{escape(shop.announcement)}</section>"
        )
    if contacts := _contacts(shop, lang):
        about += f'<div class="contacts">{contacts}</div>'
    offers = [offer for group in listing.groups for offer in group.offers]
    by_hand = bool(offers) and all(offer.product.delivery == "manual" for offer in offers)
    trust = (
        '<ul class="trust">'
        + ("" if by_hand else f"<li>{_icon('bolt')}{escape(t['shop.instant'])}</li>")  # only where it is true
        + (f"<li>{_icon('lock')}{escape(_secure_by(providers, lang))}</li>" if providers else "")
        + f"<li>{_icon('shield')}{escape(t['trust.private'])}</li></ul>"
    )
    groups = "".join(
        f'<section class="category" aria-labelledby="category-{n}"><h2 id="category-{n}">'
        f"{escape(group.category if group.category is not None else t['shop.other'])}</h2>"
        f'<ul class="products">{"".join(_offer(offer, lang) for offer in group.offers)}</ul></section>'
        for n, group in enumerate(listing.groups)
    )
    empty = (
        f'<div class="card"><p id="empty">{escape(t["shop.empty"])}</p></div>' if not listing.paged else ""
    )
    pager = ""
    if listing.paged:
        pager += f'<a id="newest" href="{escape(path or "?")}">{escape(t["shop.newest"])}</a>'
    if listing.more:
        pager += f'<a id="more" rel="next" href="?after={escape(listing.more)}">{escape(t["shop.more"])}</a>'
    body = (
        (f'<div class="card shop-info">{about}</div>' if about else "")
        + f'{trust}<div id="products">{groups or empty}</div>'
        + (f'<nav class="pager" aria-label="{escape(t["shop.pages"])}">{pager}</nav>' if pager else "")
    )
    description = _summary(shop.announcement or t["meta.shop"].format(shop=shop.name))
    data = {"merchant-id": listing.merchant_id}
    return _page(
        lang, shop.name, data, body, LOOKUP_SCRIPT, brand=brand, description=description, images=logo_origin
    )


def _offer(offer: Offer, lang: str) -> str:
    t, product = TEXTS[lang], offer.product
    if offer.available is None:  # not counted (top-up, manual): never sold out, the delivery badge says it
        stock = ""
    elif offer.available > 0:
        stock = f'<span class="stock stock-in">{escape(t["in_stock"].format(count=offer.available))}</span>'
    else:
        stock = f'<span class="stock stock-out">{escape(t["sold_out"])}</span>'
    return (
        f'<li class="product" data-product-id="{escape(product.product_id)}">'
        f'<a href="/p/{escape(product.product_id)}">{escape(product.name)}</a>'
        f'<span class="product-price">{escape(money(product.price, lang))}</span><span class="facts">{stock}'
        f'<span class="delivery muted">{escape(_delivery(product, lang))}</span></span></li>'
    )


def _notice(lang: str, title: str, text: str, text_id: str, *, code: str = "", status: int = 200) -> Page:
    """A page that only says something (no shop here; not found, with a way to the shop)."""
    t = TEXTS[lang]
    home = f'<p><a class="button-link" href="/" id="home">{escape(t["home"])}</a></p>' if code else ""
    body = (
        f'<section class="card notice">{f"<p class=big>{code}</p>" if code else ""}<h1>{escape(title)}</h1>'
        f'<p id="{text_id}">{escape(text)}</p>{home}</section>'
    )
    return _page(lang, title, {}, body, LOOKUP_SCRIPT, status=status)


def no_shop_page(lang: str) -> Page:
    """`GET /` when DEFAULT_SHOP names no shop."""
    t = TEXTS[lang]
    return _notice(lang, t["shop.none_title"], t["shop.none"], "no-shop")


def not_found_page(lang: str, what: str) -> Page:
    """404 in the page's language: `what` is product, shop or order."""
    t = TEXTS[lang]
    return _notice(lang, t["not_found.title"], t["not_found." + what], "not-found", code="404", status=404)


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
