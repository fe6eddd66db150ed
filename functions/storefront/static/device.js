// This browser's device id for the risk engine, sent with the checkout (docs/risk.md "Device id"): the
// SHA-256 of a random secret made once and kept in this origin's localStorage, and of a few coarse facts
// every page is told anyway; "d1." and 22 base64url characters (128 bits). Where storage is refused, the
// facts alone, marked "d1w." (weak: two alike devices share it). No canvas, audio or WebGL, nothing from
// another origin, and the secret itself never leaves the browser. Any failure: no id.
"use strict";
const DEVICE_KEY = "miaofa:device";

// The kept secret (32 hex digits), made at the first visit; "" where storage is refused or fails.
function deviceSecret() {
  try {
    let secret = localStorage.getItem(DEVICE_KEY);
    if (!/^[0-9a-f]{32}$/.test(secret || "")) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      secret = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
      localStorage.setItem(DEVICE_KEY, secret);
    }
    return secret;
  } catch (failure) {
    return ""; // a secret that is not kept would differ at every page: the facts alone are steadier
  }
}

// Coarse facts that stay the same from one visit to the next; the screen's sides sorted, so that
// turning a phone changes nothing.
function deviceFacts() {
  const sides = [screen.width, screen.height].sort((a, b) => a - b);
  const platform = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return [navigator.language, zone, ...sides, screen.colorDepth, navigator.hardwareConcurrency, platform].join("|");
}

// The id, or null; never rejects (the checkout goes on without it).
async function deviceId() {
  try {
    const secret = deviceSecret();
    const text = [location.origin, secret, deviceFacts()].join("\n");
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    const half = btoa(String.fromCharCode(...new Uint8Array(digest, 0, 16)));
    return (secret ? "d1." : "d1w.") + half.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  } catch (failure) {
    return null; // no crypto.subtle (a plain-http page other than localhost), or anything else
  }
}
