// Verify a miaofa license key (or an activation) offline with WebCrypto: browsers with Ed25519
// (Chrome 137+, Firefox 129+, Safari 17+) and Node >= 20. No dependencies.
//
//   const license = await verifyLicense(text, jwks, { merchantId, productId });
//   const activation = await verifyActivation(text, jwks, { licenseId, machine });
//
// `jwks` is the shop's published JWK Set ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid", "x"}]}).
// On refusal both throw a LicenseError whose `kind` says why: malformed, unknown_key, bad_signature,
// wrong_merchant, wrong_product, wrong_license, wrong_machine, expired. Times are Unix seconds;
// `now` (seconds) defaults to the clock. The format is described byte by byte in docs/licenses.md.

class LicenseError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

const LICENSE_FORMAT = 0x01;
const ACTIVATION_FORMAT = 0x02;
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ENTITLEMENT = /^[A-Za-z0-9._:-]{1,32}$/;
const MACHINE = /^[!-~]{1,128}$/;

// RFC 4648 base32 without padding; refuses a length or trailing bits no encoder makes.
function base32Bytes(body) {
  if (!/^[A-Z2-7]+$/.test(body) || [1, 3, 6].includes(body.length % 8)) return null;
  const out = new Uint8Array(Math.floor((body.length * 5) / 8));
  let bits = 0, value = 0, at = 0;
  for (const char of body) {
    value = (value << 5) | BASE32.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >>> bits) & 0xff;
    }
    value &= (1 << bits) - 1;
  }
  return value === 0 ? out : null;
}

async function openSigned(text, jwks, formatByte, what) {
  const compact = text.replace(/\s+/g, "").toUpperCase();
  const dash = compact.indexOf("-");
  const prefix = compact.slice(0, dash);
  const raw = dash > 0 && /^[A-Z][A-Z0-9]{0,11}$/.test(prefix) ? base32Bytes(compact.slice(dash + 1)) : null;
  if (raw === null || raw.length <= 64 + 5) throw new LicenseError("malformed", `not a ${what}, or cut short`);
  const payload = raw.subarray(0, raw.length - 64);
  const signature = raw.subarray(raw.length - 64);
  if (payload[0] !== formatByte) throw new LicenseError("malformed", `not a ${what} (first byte ${payload[0]})`);
  const kid = Array.from(payload.subarray(1, 5), (b) => b.toString(16).padStart(2, "0")).join("");
  const jwk = jwks.keys.find((k) => k.kid === kid && k.kty === "OKP" && k.crv === "Ed25519");
  if (!jwk) throw new LicenseError("unknown_key", `key id ${kid} is not among the published keys`);
  // Only the members importKey needs: some implementations refuse an `alg` or `use` they do not expect.
  const key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, false, ["verify"]);
  const message = new Uint8Array(prefix.length + 1 + payload.length);
  message.set(new TextEncoder().encode(prefix + "-"));
  message.set(payload, prefix.length + 1);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message))) {
    throw new LicenseError("bad_signature", `the ${what} was altered or not signed by the shop`);
  }
  return { kid, reader: new Reader(payload.subarray(5), what) };
}

class Reader {
  constructor(bytes, what) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
    this.what = what;
  }
  need(size) {
    if (this.at + size > this.bytes.length) throw new LicenseError("malformed", `the ${this.what} was cut short`);
    this.at += size;
    return this.at - size;
  }
  u8() { return this.view.getUint8(this.need(1)); }
  u16() { return this.view.getUint16(this.need(2)); } // big-endian, DataView's default
  u32() { return this.view.getUint32(this.need(4)); }
  id(prefix) {
    const start = this.need(10);
    return prefix + "_" + Array.from(this.bytes.subarray(start, start + 10), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  ascii(pattern) {
    const size = this.u8();
    const start = this.need(size);
    const value = String.fromCharCode(...this.bytes.subarray(start, start + size));
    if (!pattern.test(value)) throw new LicenseError("malformed", `the ${this.what} holds a field its format does not allow`);
    return value;
  }
  end() {
    if (this.at !== this.bytes.length) throw new LicenseError("malformed", `the ${this.what} has bytes after its last field`);
  }
}

async function verifyLicense(text, jwks, { now = Date.now() / 1000, merchantId, productId } = {}) {
  const { kid, reader: r } = await openSigned(text, jwks, LICENSE_FORMAT, "license");
  const [licenseId, merchant, product, order] = ["lic", "mer", "prd", "ord"].map((p) => r.id(p));
  const issued = r.u32(), expires = r.u32(), machines = r.u16(), count = r.u8();
  const entitlements = Array.from({ length: count }, () => r.ascii(ENTITLEMENT));
  r.end();
  if (merchantId !== undefined && merchant !== merchantId) throw new LicenseError("wrong_merchant", `the license is for merchant ${merchant}`);
  if (productId !== undefined && product !== productId) throw new LicenseError("wrong_product", `the license is for product ${product}`);
  if (expires && now >= expires) throw new LicenseError("expired", `the license expired at ${expires}`);
  return {
    kid, license_id: licenseId, merchant_id: merchant, product_id: product, order_id: order,
    issued_at: issued, expires_at: expires || null, max_machines: machines || null, entitlements,
  };
}

async function verifyActivation(text, jwks, { now = Date.now() / 1000, licenseId, machine } = {}) {
  const { kid, reader: r } = await openSigned(text, jwks, ACTIVATION_FORMAT, "activation");
  const activated = r.id("lic");
  const issued = r.u32(), expires = r.u32();
  const name = r.ascii(MACHINE);
  r.end();
  if (licenseId !== undefined && activated !== licenseId) throw new LicenseError("wrong_license", `the activation is for license ${activated}`);
  if (machine !== undefined && name !== machine) throw new LicenseError("wrong_machine", "the activation is for another machine");
  if (now >= expires) throw new LicenseError("expired", `the activation ended at ${expires}`);
  return { kid, license_id: activated, machine: name, issued_at: issued, expires_at: expires };
}

if (typeof module !== "undefined") module.exports = { LicenseError, verifyLicense, verifyActivation };
