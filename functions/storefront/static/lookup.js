// The "find my orders" form: always the same answer, whether or not the address has orders.
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
      body: JSON.stringify({email: form["lookup-email"].value}),
    }).catch(() => null);
    note.textContent = response && response.status === 429 ? texts["error.rate_limited"] : texts.lookup_sent;
  });
})();
