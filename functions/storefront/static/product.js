// The product page: start the checkout, keep the order's access token in this browser, go to pay.
"use strict";
const texts = JSON.parse(document.getElementById("texts").textContent);
const page = document.getElementById("page").dataset;
const form = document.getElementById("buy");
const error = document.getElementById("error");

function problem(body) {
  const code = body && body.error ? body.error.code : "";
  const known = texts["error." + code];
  return known || texts["error.other"].replace("{message}", body && body.error ? body.error.message : "?");
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("pay");
    button.disabled = true;
    error.textContent = "";
    const chosen = form.querySelector("input[name=provider]:checked");
    const request = {
      product_id: page.productId,
      quantity: Number(form.quantity.value),
      email: form.email.value,
    };
    if (chosen) request.provider = chosen.value;
    try {
      const response = await fetch("/api/orders", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(request),
      });
      const body = await response.json();
      if (!response.ok) throw body;
      localStorage.setItem("miaofa:token:" + body.order_id, body.access_token);
      if (body.payment.kind === "qr") {
        sessionStorage.setItem("miaofa:qr:" + body.order_id, body.payment.url);
        location.href = "/o/" + encodeURIComponent(body.order_id);
      } else {
        location.href = body.payment.url;
      }
    } catch (failure) {
      error.textContent = problem(failure);
      button.disabled = false;
    }
  });
}
