// The order page: follows the order live until it settles and shows its codes with copy and download
// buttons. It watches the order over a WebSocket (docs/push.md); a message names the order's status,
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
// checkout answered, kept by the product page in this tab, beside the amount and the provider's name.
const storedQr = (() => {
  try {
    const qr = JSON.parse(sessionStorage.getItem("miaofa:qr:" + orderId) || "null");
    return qr && typeof qr.svg === "string" ? qr : null;
  } catch (failure) {
    return null;
  }
})();

function drawQr(order) {
  const box = byId("qr");
  if (box.childElementCount) return true;
  const svg = new DOMParser().parseFromString(storedQr.svg, "image/svg+xml").documentElement;
  if (svg.namespaceURI !== "http://www.w3.org/2000/svg" || svg.localName !== "svg") return false;
  const drawing = (element) => element.localName === "path" || element.localName === "title";
  if (![...svg.querySelectorAll("*")].every(drawing)) return false; // squares and lines, nothing else
  box.replaceChildren(document.importNode(svg, true));
  const provider = texts["provider." + order.provider] || order.provider;
  byId("qr-provider").textContent = provider;
  byId("qr-amount").textContent = money(order.total);
  byId("qr-note").textContent = texts.scan_with.replace("{provider}", provider).replace("{amount}", money(order.total));
  return true;
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
  showSummary(order);
  const waiting = storedQr !== null && order.status === "PENDING_PAYMENT";
  byId("qr-box").hidden = !(waiting && drawQr(order)); // paid: the code gives way to the order's codes
  if (order.items && !byId("codes").childElementCount) showCodes(order);
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

// A status from the socket: nothing to do if the page shows it; PAID (no codes yet) from the message
// alone; any other by reading the order (a read under way reads again after it).
function follow(status) {
  if (shown && status === shown.status) return;
  if (shown && status === "PAID" && shown.status === "PENDING_PAYMENT") {
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
