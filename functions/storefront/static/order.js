// The order page: follows the order live (polling with backoff) until it settles; shows its codes
// with copy and download buttons. The access token comes in the URL fragment (never sent to the
// server) or from this browser's storage, and goes only into the Authorization header.
"use strict";
const texts = JSON.parse(document.getElementById("texts").textContent);
const page = document.getElementById("page").dataset;
const orderId = page.orderId;
const SETTLED = new Set(["DELIVERED", "EXPIRED", "REFUNDED", "REPLACED"]);
const byId = (id) => document.getElementById(id);

const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
if (fragment) {
  localStorage.setItem("miaofa:token:" + orderId, fragment);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = localStorage.getItem("miaofa:token:" + orderId);

function when(at) {
  return new Date(at).toLocaleString(page.lang);
}

function explain(order) {
  const types = order.events.map((e) => e.type);
  const soldOut = types.includes("reservation.expired") && !types.includes("payment.succeeded");
  if ((order.status === "REFUNDING" || order.status === "REFUNDED") && soldOut) return texts["explain.SOLD_OUT"];
  const expires = order.expires_at ? when(order.expires_at) : "";
  return (texts["explain." + order.status] || "").replace("{expires}", expires);
}

function copyButton(label, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.textContent = label;
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(text);
    button.textContent = texts.copied;
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

function showCodes(order) {
  const codes = order.items.map((item) => item.code);
  const list = byId("codes");
  list.replaceChildren();
  codes.forEach((code, n) => {
    const row = document.createElement("li");
    const value = document.createElement("code");
    value.className = "code";
    value.id = "code-" + n;
    value.textContent = code;
    row.append(value, copyButton(texts.copy, code));
    list.append(row);
  });
  const actions = byId("code-actions");
  const download = document.createElement("button");
  download.type = "button";
  download.className = "secondary";
  download.id = "download";
  download.textContent = texts.download;
  download.addEventListener("click", () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([codes.join("\n") + "\n"], {type: "text/plain"}));
    link.download = orderId + ".txt";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  const all = copyButton(texts.copy_all, codes.join("\n"));
  all.id = "copy-all";
  actions.replaceChildren(all, download);
  byId("delivered").hidden = false;
  if (order.instructions) {
    byId("instructions").textContent = order.instructions;
    byId("instructions-box").hidden = false;
  }
}

function show(order) {
  document.body.dataset.status = order.status;
  byId("status").textContent = texts["status." + order.status] || order.status;
  byId("explain").textContent = explain(order);
  const events = byId("events");
  events.replaceChildren();
  for (const event of order.events) {
    const row = document.createElement("li");
    const time = document.createElement("time");
    time.dateTime = event.at;
    time.textContent = when(event.at);
    row.append((texts["event." + event.type] || event.type) + " · ", time);
    events.append(row);
  }
  const qr = sessionStorage.getItem("miaofa:qr:" + orderId);
  byId("qr-box").hidden = !(qr && order.status === "PENDING_PAYMENT");
  if (qr) byId("qr").textContent = qr;
  if (order.items && !byId("codes").childElementCount) showCodes(order);
}

let delay = 500;
async function poll() {
  if (!token) {
    byId("status").textContent = "—";
    byId("explain").textContent = texts.no_access;
    return;
  }
  let response;
  try {
    response = await fetch("/api/orders/" + encodeURIComponent(orderId), {
      headers: {Authorization: "Bearer " + token},
      cache: "no-store",
    });
  } catch (failure) {
    byId("explain").textContent = texts.offline;
    delay = Math.min(delay * 2, 10000);
    setTimeout(poll, delay);
    return;
  }
  if (response.status === 404) {
    byId("status").textContent = "—";
    byId("explain").textContent = texts.not_found;
    return;
  }
  if (response.ok) {
    const order = await response.json();
    show(order);
    if (SETTLED.has(order.status)) return;
  }
  delay = Math.min(delay * 1.5, 10000);
  setTimeout(poll, delay);
}
poll();
