// The product page: the total for the chosen quantity before "buy" (the server's totals, tiers
// applied), then start the checkout, keep the order's access token in this browser and go to pay.
"use strict";
const texts = JSON.parse(document.getElementById("texts").textContent);
const page = document.getElementById("page").dataset;
const form = document.getElementById("buy");
const error = document.getElementById("error");
const range = {min: page.min, max: page.max};
const totals = page.totals ? JSON.parse(page.totals) : {};

// The quantity typed, if the form takes it (a whole number within the range), else null.
function quantity() {
  const text = form.quantity.value.trim();
  return /^[0-9]+$/.test(text) && Object.hasOwn(totals, String(Number(text))) ? Number(text) : null;
}

function showTotal() {
  const chosen = quantity();
  const [total, detail] = chosen === null ? ["—", ""] : totals[String(chosen)];
  document.getElementById("total-amount").textContent = total;
  document.getElementById("total-detail").textContent = detail;
  error.textContent = chosen === null ? problem(texts, {error: {code: "invalid_quantity"}}, range) : "";
}

if (form) {
  form.quantity.addEventListener("input", showTotal);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = quantity();
    if (chosen === null) {
      showTotal();
      form.quantity.focus();
      return;
    }
    if (!form.email.checkValidity() || !form.email.value) {
      error.textContent = problem(texts, {error: {code: "invalid_email"}});
      form.email.focus();
      return;
    }
    const button = document.getElementById("pay");
    button.disabled = true;
    error.textContent = "";
    const provider = form.querySelector("input[name=provider]:checked");
    const request = {product_id: page.productId, quantity: chosen, email: form.email.value};
    if (provider) request.provider = provider.value;
    let response;
    try {
      response = await fetch("/api/orders", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(request),
      });
    } catch (failure) {
      error.textContent = texts["error.network"];
      button.disabled = false;
      return;
    }
    const body = await response.json().catch(() => null);
    if (!response.ok || !body) {
      error.textContent = problem(texts, body, range);
      button.disabled = false;
      return;
    }
    localStorage.setItem("miaofa:token:" + body.order_id, body.access_token);
    if (body.payment.kind === "qr") {
      // The order page draws the code (the server's SVG) beside the amount and the provider's name.
      const qr = {url: body.payment.url, svg: body.payment.qr_svg};
      sessionStorage.setItem("miaofa:qr:" + body.order_id, JSON.stringify(qr));
      location.href = "/o/" + encodeURIComponent(body.order_id);
    } else {
      location.href = body.payment.url;
    }
  });
}
