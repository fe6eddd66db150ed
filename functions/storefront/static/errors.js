// An error from the shop's API in the page's language, by its stable code (texts "error.<code>",
// functions/storefront/i18n.py): the API's own message is English and never shown. `values` fill
// the text's {placeholders} (the product's quantity range); a refusal's `reference` fills {reference}.
"use strict";
function problem(texts, body, values) {
  const code = body && body.error && typeof body.error.code === "string" ? body.error.code : "";
  let text = texts["error." + code] || texts["error.other"].replace("{code}", code || "?");
  const reference = code && typeof body.error.reference === "string" ? {reference: body.error.reference} : {};
  for (const [name, value] of Object.entries({...(values || {}), ...reference})) text = text.split("{" + name + "}").join(String(value));
  return text;
}
