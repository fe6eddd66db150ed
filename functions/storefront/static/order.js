// The order page: follows the order live until it settles and shows its codes with copy and download
// buttons, in its delivery mode's own words (a top-up: "Topping up", then "Credited" with its receipt; a
// manual order: waiting for its shop, with the time the shop promised, then what the shop wrote; a license:
// each key whole, with its own copy and .lic download). It watches the order over a WebSocket (docs/push.md); a message names the order's status,
// and the page reads the order with GET /api/orders/{id} when that status is not the one it shows
// (PAID, which needs nothing more, is shown from the message): codes come only from there. While the
// socket is down it polls
// (at most a second apart) and reconnects with backoff. The access token comes in the URL fragment
// (never sent to the server) or from this browser's storage; it goes only into the Authorization
// header and the socket's first message, never into a URL.
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

// An amount in minor units as buyers read it (¥99.00, $5.00), as the server writes it
// (functions/storefront/i18n.py `money`): ISO 4217 digits, a sign for the currencies it has one for.
const moneyFormat = JSON.parse(page.money || "{}");
function money(value) {
  const digits = (moneyFormat.digits || {})[value.currency] ?? 2;
  const text = String(value.amount).padStart(digits + 1, "0");
  const decimal = digits ? text.slice(0, -digits) + "." + text.slice(-digits) : text;
  const format = new Intl.NumberFormat(page.lang, {
    style: "currency",
    currency: value.currency,
    currencyDisplay: (moneyFormat.symbols || []).includes(value.currency) ? "narrowSymbol" : "code",
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
  return format.format(decimal); // a decimal string: exact, whatever the amount
}

// What was bought: the product (with a link back to it), the quantity and the amount.
function showSummary(order) {
  byId("summary-product").textContent = order.product ? order.product.name : "—";
  byId("summary-quantity").textContent = String(order.quantity);
  byId("summary-total").textContent = money(order.total);
  const link = byId("product-link");
  if (order.product) {
    link.href = "/p/" + encodeURIComponent(order.product.id);
    link.hidden = false;
  }
  byId("summary").hidden = false;
}

// The payment's QR code (WeChat Pay Native, Alipay precreate) while the order waits for it: the SVG the
// checkout answered, kept by the product page in this browser (static/qr.js), beside the amount and the
// provider's name. Drawn at once, before the order is read, so the page does not jump when it shows; hidden
// again if the order turns out not to wait for a payment.
const storedQr = readQr(orderId);

function drawQr() {
  const svg = new DOMParser().parseFromString(storedQr.svg, "image/svg+xml").documentElement;
  if (svg.namespaceURI !== "http://www.w3.org/2000/svg" || svg.localName !== "svg") return false;
  const drawing = (element) => element.localName === "path" || element.localName === "title";
  if (![...svg.querySelectorAll("*")].every(drawing)) return false; // squares and lines, nothing else
  byId("qr").replaceChildren(document.importNode(svg, true));
  return true;
}
const qrDrawn = storedQr !== null && drawQr();
byId("qr-box").hidden = !qrDrawn;

function showQr(order) {
  const waiting = qrDrawn && order.status === "PENDING_PAYMENT" && Date.parse(order.expires_at) > Date.now();
  if (waiting) {
    const provider = texts["provider." + order.provider] || order.provider;
    byId("qr-provider").textContent = provider;
    byId("qr-amount").textContent = money(order.total);
    byId("qr-note").textContent = texts.scan_with.replace("{provider}", provider).replace("{amount}", money(order.total));
  }
  byId("qr-box").hidden = !waiting; // paid: the code gives way to the order's codes
  if (storedQr !== null && !waiting) forgetQr(orderId); // paid, expired or refunded: nothing more to scan
}

// Each delivery mode has its own words where codes from stock would be wrong (a top-up is "Topping up",
// then "Credited"; a manual order waits for its shop): texts "<prefix><mode>.<key>", else "<prefix><key>".
const modeOf = (order) => order.delivery || "stock";
const said = (prefix, key, mode) => texts[prefix + mode + "." + key] || texts[prefix + key];

// A manual order's promise as its shop gives it ("usually within 30 minutes", never "instant"), and past
// it, that it is late.
function promised(order) {
  const minutes = order.promise_minutes;
  if (!minutes) return texts["explain.manual.PAID.unpromised"];
  const paid = order.events.filter((e) => e.type === "payment.succeeded").pop();
  const late = paid !== undefined && Date.parse(paid.at) + minutes * 60_000 < Date.now();
  return texts[late ? "explain.manual.PAID.late" : "explain.manual.PAID"].replace("{minutes}", String(minutes));
}

function explain(order) {
  const types = order.events.map((e) => e.type);
  const soldOut = types.includes("reservation.expired") && !types.includes("payment.succeeded");
  if ((order.status === "REFUNDING" || order.status === "REFUNDED") && soldOut) return texts["explain.SOLD_OUT"];
  if (modeOf(order) === "manual" && order.status === "PAID") return promised(order);
  const expires = order.expires_at ? when(order.expires_at) : "";
  const text = (said("explain.", order.status, modeOf(order)) || "").replace("{expires}", expires);
  if (order.status !== "IN_REVIEW" || !order.review_until) return text;
  // A risk review: the shop's deadline and what then, as its product says (an honest time, not "soon").
  const then = texts["explain.review." + order.review_expires_to] || "";
  return (text + " " + then.replace("{until}", when(order.review_until))).trim();
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

// A text file made in the browser from what the page shows (no server route serves codes as files).
function downloadButton(id, label, name, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.id = id;
  button.textContent = label;
  button.addEventListener("click", () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], {type: "text/plain"}));
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
  return button;
}

// A license order's keys: each whole (monospace, wrapped), with its own copy and download (`<order>.lic`,
// or `<order>-<n>.lic` for several).
function showLicenses(licenses) {
  byId("codes-title").textContent = texts["codes.license"];
  const list = byId("codes");
  list.replaceChildren();
  licenses.forEach((license, n) => {
    const row = document.createElement("li");
    const value = document.createElement("pre");
    value.className = "license";
    value.id = "license-" + n;
    value.textContent = license;
    const name = orderId + (licenses.length > 1 ? "-" + (n + 1) : "") + ".lic";
    const copy = copyButton(texts.copy, license);
    copy.id = "copy-license-" + n;
    row.append(value, copy, downloadButton("download-license-" + n, texts["download.license"], name, license + "\n"));
    list.append(row);
  });
  byId("code-actions").replaceChildren();
  byId("codes-box").hidden = false;
}

function showCodes(order) {
  const codes = order.items.map((item) => item.code);
  if (!codes.length) return; // a manual order fulfilled with text alone
  if (modeOf(order) === "license") return showLicenses(codes);
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
  const download = downloadButton("download", texts.download, orderId + ".txt", codes.join("\n") + "\n");
  const all = copyButton(texts.copy_all, codes.join("\n"));
  all.id = "copy-all";
  actions.replaceChildren(all, download);
  byId("codes-box").hidden = false;
}

// What the order was delivered with, once: a top-up's receipt, the text a merchant fulfilled a manual order
// with, the codes (stock, or a manual order's), then the product's instructions. All set as text.
let deliveredShown = false;
function showDelivered(order) {
  deliveredShown = true;
  if (order.receipt) {
    byId("receipt").textContent = order.receipt;
    byId("receipt").after(copyButton(texts.copy, order.receipt));
    byId("receipt-box").hidden = false;
  }
  if (order.text) {
    byId("delivered-text").textContent = order.text;
    byId("text-box").hidden = false;
  }
  if (order.items) showCodes(order);
  if (order.instructions) {
    byId("instructions").textContent = order.instructions;
    byId("instructions-box").hidden = false;
  }
  byId("delivered").hidden = !byId("delivered").querySelector(".part:not([hidden])");
}

function show(order) {
  const mode = modeOf(order);
  document.body.dataset.status = order.status;
  document.body.dataset.delivery = mode;
  byId("status").textContent = said("status.", order.status, mode) || order.status;
  byId("explain").textContent = explain(order);
  for (const step of document.querySelectorAll(".steps [data-step]")) {
    step.textContent = said("step.", step.dataset.step, mode); // a top-up's last step is "Credited"
  }
  const events = byId("events");
  events.replaceChildren();
  let sent = false;
  for (const event of order.events) {
    if (event.type === "topup.sent" && sent) continue; // asked again after a timeout: one step to the buyer
    sent = sent || event.type === "topup.sent";
    const row = document.createElement("li");
    const time = document.createElement("time");
    time.dateTime = event.at;
    time.textContent = when(event.at);
    row.append((said("event.", event.type, mode) || event.type) + " · ", time);
    events.append(row);
  }
  showSummary(order);
  showQr(order);
  if (!deliveredShown && (order.items || order.receipt || order.text)) showDelivered(order);
}

const POLL_CAP = 1000; // ms between polls while the socket is down
const ACCEPT_WITHIN = 5000; // an open socket that does not say "watching" by then is given up
const QUIET = 30000; // re-read the order after this long without a message: a lost push costs no more
const RECONNECT_CAP = 30000;
let stopped = false; // settled, unknown order or no token: nothing more to follow
let socket = null;
let watching = false;
let refused = false; // the server said the token cannot watch this order: do not ask again
let reconnectDelay = 1000;
let quietTimer = 0;
let reconnectTimer = 0;
let reading = null;
let readAgain = false;
let shown = null; // the last order read, as shown
const pause = (ms) => new Promise((done) => setTimeout(done, ms));

// body[data-live]: "push" while the socket watches, "poll" while the page polls, absent once stopped.
const live = (how) => { document.body.dataset.live = how; };

function stop() {
  stopped = true;
  delete document.body.dataset.live;
  clearTimeout(quietTimer);
  clearTimeout(reconnectTimer);
  if (socket) socket.close();
}

async function readOnce() {
  let response;
  try {
    response = await fetch("/api/orders/" + encodeURIComponent(orderId), {
      headers: {Authorization: "Bearer " + token},
      cache: "no-store",
    });
  } catch (failure) {
    byId("explain").textContent = texts.offline;
    return;
  }
  if (response.status === 404) {
    byId("qr-box").hidden = true;
    byId("summary").hidden = true;
    byId("status").textContent = "—";
    byId("explain").textContent = texts.not_found;
    stop();
  } else if (response.ok) {
    const order = await response.json();
    shown = order;
    show(order);
    if (SETTLED.has(order.status)) stop();
  } else {
    // 429, 503, 500: said in the page's language; the page keeps following the order.
    byId("explain").textContent = problem(texts, await response.json().catch(() => null));
  }
}

// One read at a time; a call during a read asks for one more after it, so no change is missed.
function refresh() {
  if (reading) {
    readAgain = true;
    return reading;
  }
  reading = (async () => {
    do {
      readAgain = false;
      await readOnce();
    } while (readAgain && !stopped);
    reading = null;
  })();
  return reading;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  live("poll");
  let delay = 500;
  for (;;) {
    await pause(delay);
    if (stopped || watching) break;
    await refresh();
    delay = Math.min(delay * 1.5, POLL_CAP);
  }
  polling = false;
}

// A status from the socket: nothing to do if the page shows it; PAID (no codes yet) of a stock order, which
// is delivered a second later, from the message alone; any other by reading the order (a read under way
// reads again after it): a top-up or a manual order may stay PAID a while, its timeline complete.
function follow(status) {
  if (shown && status === shown.status) return;
  if (shown && status === "PAID" && shown.status === "PENDING_PAYMENT" && modeOf(shown) === "stock") {
    shown = Object.assign({}, shown, {status: status});
    show(shown);
    return;
  }
  refresh();
}

function quiet() {
  clearTimeout(quietTimer);
  quietTimer = setTimeout(() => {
    refresh();
    quiet();
  }, QUIET);
}

function connect() {
  if (stopped || refused || !page.wsUrl || typeof WebSocket !== "function") return;
  let ws;
  try {
    ws = new WebSocket(page.wsUrl);
  } catch (failure) {
    return; // a URL this browser will not open: polling alone
  }
  socket = ws;
  const accept = setTimeout(() => ws.close(), ACCEPT_WITHIN);
  ws.onopen = () => ws.send(JSON.stringify({action: "watch", order_id: orderId, token: token}));
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data) || {};
    } catch (failure) {
      return;
    }
    if (message.type === "error") {
      refused = refused || message.code === "order_not_found";
      ws.close();
      return;
    }
    if (message.type === "watching") {
      clearTimeout(accept);
      watching = true;
      live("push");
      reconnectDelay = 1000;
    }
    quiet();
    follow(message.status);
  };
  ws.onclose = () => {
    clearTimeout(accept);
    clearTimeout(quietTimer);
    if (socket !== ws) return;
    socket = null;
    const wasWatching = watching;
    watching = false;
    if (stopped) return;
    if (wasWatching) refresh(); // whatever changed while the socket was going down
    live("poll");
    poll();
    if (!refused) {
      reconnectTimer = setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_CAP);
    }
  };
}

async function start() {
  if (!token) {
    byId("qr-box").hidden = true;
    byId("summary").hidden = true;
    byId("status").textContent = "—";
    byId("explain").textContent = texts.no_access;
    return;
  }
  await refresh(); // a settled order (back from a redirect after paying) shows at once, no socket
  if (stopped) return;
  connect();
  poll(); // until the socket watches
}
start();
