"""Minimal hosted pages: product (checkout) and order. Everything from a merchant is escaped."""

import json
from html import escape

from shared.money import Money
from shared.products import Product

ZERO_DECIMAL = {"JPY", "KRW", "VND"}


def format_money(money: Money) -> str:
    if money.currency in ZERO_DECIMAL:
        return f"{money.amount} {money.currency}"
    return f"{money.amount // 100}.{money.amount % 100:02d} {money.currency}"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#111;line-height:1.5}
label{display:block;margin:.75rem 0 .25rem}input,button{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box}
button{background:#0b5;color:#fff;border:0;border-radius:.3rem;margin-top:1rem;cursor:pointer}
.error{color:#b00020}.code{font-family:monospace;font-size:1.2rem;background:#f3f3f3;padding:.5rem;margin:.25rem 0}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def product_page(product: Product, available: int) -> str:
    sold_out = available <= 0
    form = (
        '<p class="error" id="soldout">Sold out.</p>'
        if sold_out
        else f"""
<form id="buy">
  <label for="quantity">Quantity</label>
  <input id="quantity" name="quantity" type="number" min="{product.min_per_order}" max="{product.max_per_order}" value="{product.min_per_order}" required>
  <label for="email">E-mail</label>
  <input id="email" name="email" type="email" autocomplete="email" required>
  <button type="submit" id="pay">Buy</button>
  <p class="error" id="error" role="alert"></p>
</form>
<script>
document.getElementById("buy").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const res = await fetch("/api/orders", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{product_id: {json.dumps(product.product_id)}, quantity: Number(e.target.quantity.value),
                          email: e.target.email.value}})}});
  const body = await res.json();
  if (!res.ok) {{ document.getElementById("error").textContent = body.error.message; return; }}
  localStorage.setItem("miaofa:token:" + body.order_id, body.access_token);
  location.href = body.payment.url;
}});
</script>"""
    )
    return _page(
        product.name,
        f'<h1 id="name">{escape(product.name)}</h1><p id="description">{escape(product.description)}</p>'
        f'<p>Price: <strong id="price">{escape(format_money(product.price))}</strong> · '
        f'<span id="available">{available}</span> in stock · delivered instantly</p>{form}',
    )


def order_page(order_id: str) -> str:
    return _page(
        "Your order",
        f"""<h1>Order <span id="order-id">{escape(order_id)}</span></h1>
<p>Status: <strong id="status">loading…</strong></p>
<div id="codes"></div><ol id="events"></ol><p class="error" id="error" role="alert"></p>
<script>
const orderId = {json.dumps(order_id)};
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {{ localStorage.setItem("miaofa:token:" + orderId, fromHash); history.replaceState(null, "", location.pathname); }}
const token = localStorage.getItem("miaofa:token:" + orderId);
let delay = 500;
async function poll() {{
  if (!token) {{ document.getElementById("error").textContent = "This browser has no access to this order."; return; }}
  const res = await fetch("/api/orders/" + orderId, {{headers: {{Authorization: "Bearer " + token}}}});
  if (!res.ok) {{ document.getElementById("error").textContent = "Order not found."; return; }}
  const order = await res.json();
  document.getElementById("status").textContent = order.status;
  const events = document.getElementById("events"); events.replaceChildren();
  for (const ev of order.events) {{ const li = document.createElement("li"); li.textContent = ev.type + " · " + ev.at; events.append(li); }}
  if (order.items) {{
    const box = document.getElementById("codes"); box.replaceChildren();
    for (const item of order.items) {{ const d = document.createElement("div"); d.className = "code"; d.textContent = item.code; box.append(d); }}
    return;
  }}
  delay = Math.min(delay * 1.5, 5000); setTimeout(poll, delay);
}}
poll();
</script>""",
    )
