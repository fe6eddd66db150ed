// The payment's QR code (WeChat Pay Native, Alipay precreate) kept in this browser's localStorage by order:
// the checkout answers it once (the order does not keep the payment URL), so the product page keeps the
// server's SVG, its URL and the order's expires_at under "miaofa:qr:<order id>", and the order page draws
// it again after a reload or in another tab while the order waits for its payment. An entry goes once its
// order expires or no longer waits (`forgetQr`), and any page that loads drops the expired ones.
"use strict";
const QR_PREFIX = "miaofa:qr:";

function keepQr(orderId, entry) {
  try {
    localStorage.setItem(QR_PREFIX + orderId, JSON.stringify(entry));
  } catch (failure) {
    // storage full or refused: the order page shows the status without the code
  }
}

function readQr(orderId) {
  try {
    const entry = JSON.parse(localStorage.getItem(QR_PREFIX + orderId) || "null");
    const live = entry && typeof entry.svg === "string" && Date.parse(entry.expires_at) > Date.now();
    return live ? entry : null;
  } catch (failure) {
    return null;
  }
}

function forgetQr(orderId) {
  try {
    localStorage.removeItem(QR_PREFIX + orderId);
  } catch (failure) {
    // nothing kept
  }
}

(function pruneQrs() {
  try {
    const keys = [];
    for (let n = 0; n < localStorage.length; n++) keys.push(localStorage.key(n));
    for (const key of keys) {
      if (key && key.startsWith(QR_PREFIX) && !readQr(key.slice(QR_PREFIX.length))) localStorage.removeItem(key);
    }
  } catch (failure) {
    // storage unavailable: nothing to prune
  }
})();
