// The product page: the total for the chosen quantity before "buy" (the server's totals, tiers
// applied), the fields the product asks for (checked here first, each error beside its field; a field
// asked twice must match), then start the checkout (with this browser's device id, static/device.js),
// keep the order's access token in this browser and go to pay.
"use strict";
const texts = JSON.parse(document.getElementById("texts").textContent);
const page = document.getElementById("page").dataset;
const form = document.getElementById("buy");
const error = document.getElementById("error");
const range = {min: page.min, max: page.max};
const totals = page.totals ? JSON.parse(page.totals) : {};
const device = form ? deviceId() : null; // begun now, ready long before "buy"

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

// The product's fields (pages.py `_buyer_fields`): each control names its field in data-field, the
// second entry of a field asked twice in data-again.
const fields = form ? [...form.querySelectorAll("[data-field]")] : [];
const again = (name) => form.querySelector(`[data-again="${name}"]`);
const DIGITS = /^[0-9]{1,40}$/; // shared/buyer_input.py: what the checkout takes for each type
const PHONE = /^\+?[0-9][0-9 -]{4,22}[0-9]$/;

// Says `text` beside the field `name` ("" clears it), marking the control to fix as invalid.
function fieldError(name, text, control) {
  document.getElementById("error-" + name).textContent = text;
  for (const each of [form.querySelector(`[data-field="${name}"]`), again(name)]) {
    if (!each) continue;
    if (text && each === control) each.setAttribute("aria-invalid", "true");
    else each.removeAttribute("aria-invalid");
  }
}

// The shop's pattern as the browser reads a pattern attribute (the whole value, the "v" flag); one this
// browser cannot read is left to the checkout, which checks every value again.
function matches(pattern, value) {
  if (!pattern) return true;
  try {
    return new RegExp("^(?:" + pattern + ")$", "v").test(value);
  } catch (failure) {
    return true;
  }
}

// What is wrong with a field as typed (the text beside it), or "" — and which control to fix.
function checkField(control) {
  const value = control.value.trim();
  const second = again(control.dataset.field);
  if (!value) return control.required ? [texts["input.required"], control] : ["", null];
  const type = control.dataset.type;
  if (type === "number" && !DIGITS.test(value)) return [texts["input.digits"], control];
  if (type === "phone" && !PHONE.test(value)) return [texts["input.phone"], control];
  if (type === "email" && control.validity.typeMismatch) return [texts["input.email"], control];
  if (!matches(control.getAttribute("pattern"), value)) return [texts["input.format"], control];
  if (second && second.value.trim() !== value) return [texts["input.mismatch"], second];
  return ["", null];
}

// The fields' values for the checkout, or null after showing what to fix (the first such field focused).
function buyerInput() {
  const values = {};
  let first = null;
  for (const control of fields) {
    const [text, wrong] = checkField(control);
    fieldError(control.dataset.field, text, wrong);
    if (text && !first) first = wrong;
    const value = control.value.trim();
    if (value) values[control.dataset.field] = value;
  }
  if (first) {
    first.focus();
    return null;
  }
  return values;
}

for (const control of form ? form.querySelectorAll("[data-field], [data-again]") : []) {
  const name = control.dataset.field || control.dataset.again;
  control.addEventListener("input", () => fieldError(name, "", null)); // said again at the next "buy"
}

// A refusal of one field by the checkout (422 invalid_buyer_input, its message "buyer_input.<name>: ..."
// naming the field, never the value): said beside that field; false if the page has no such field.
function refusedField(body) {
  if (!body || !body.error || body.error.code !== "invalid_buyer_input") return false;
  const named = /^buyer_input\.([a-z][a-z0-9_]*):/.exec(body.error.message || "");
  const control = named && form.querySelector(`[data-field="${named[1]}"]`);
  if (!control) return false;
  fieldError(named[1], problem(texts, body), control);
  control.focus();
  return true;
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
    const input = buyerInput();
    if (input === null) {
      error.textContent = "";
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
    if (fields.length) request.buyer_input = input;
    const id = await Promise.race([device, new Promise((done) => setTimeout(done, 500, null))]); // never held up
    if (id) request.device = id;
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
      error.textContent = refusedField(body) ? "" : problem(texts, body, range);
      button.disabled = false;
      return;
    }
    try {
      localStorage.setItem("miaofa:token:" + body.order_id, body.access_token);
    } catch (failure) {
      // storage refused: the order is placed all the same, so go on to pay
    }
    if (body.payment.kind === "qr") {
      // The order page draws the code (the server's SVG) beside the amount and the provider's name,
      // again after a reload while the order waits for its payment (static/qr.js).
      keepQr(body.order_id, {url: body.payment.url, svg: body.payment.qr_svg, expires_at: body.expires_at});
      location.href = "/o/" + encodeURIComponent(body.order_id);
    } else {
      location.href = body.payment.url;
    }
  });
}
