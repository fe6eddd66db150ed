// The "find my orders" form (an e-mail address, and an order number for just that order): always the
// same answer, whether or not the address has orders.
"use strict";
(() => {
  const form = document.getElementById("lookup");
  if (!form) return;
  const texts = JSON.parse(document.getElementById("texts").textContent);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const note = document.getElementById("lookup-note");
    const response = await fetch("/api/orders/lookup", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(
        form["lookup-order"].value.trim()
          ? {email: form["lookup-email"].value, order_id: form["lookup-order"].value.trim()}
          : {email: form["lookup-email"].value},
      ),
    }).catch(() => null);
    // Accepted: the one answer for any address. Refused (a malformed address, too many look-ups): why,
    // in the page's language (static/errors.js).
    if (!response) note.textContent = texts["error.network"];
    else if (response.ok) note.textContent = texts.lookup_sent;
    else note.textContent = problem(texts, await response.json().catch(() => null));
  });
})();
