"""The verification snippets of docs/licenses.md, run against licenses and activations that
shared/licenses makes: the Python one here (imported, and as a command), the JavaScript one under
Node here (when node is installed) and in Chromium in tests/browser/test_license_snippet.py. Each
must accept what verifies and refuse the rest with the same kind as the shop's own verifier."""

import ast
import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shared.ids import new_id
from shared.licenses import Keyring, License, sign_activation, verify_activation, verify_license
from tests.unit.test_licenses import NOW, make_payload, raw_of, sign, text_of

ROOT = Path(__file__).resolve().parents[2]
PYTHON_SNIPPET = ROOT / "docs" / "snippets" / "verify_license.py"
JS_SNIPPET = ROOT / "docs" / "snippets" / "verify_license.js"
MACHINE = "machine-7f3a"


def as_snippet_result(found: License) -> dict:
    """What the snippets return for a license: the same fields, times in Unix seconds."""
    fields = dataclasses.asdict(found)
    return {
        **fields,
        "issued_at": int(found.issued_at.timestamp()),
        "expires_at": int(found.expires_at.timestamp()) if found.expires_at else None,
        "entitlements": list(found.entitlements),
    }


def snippet_cases() -> dict:
    """One keyring rotated once (both keys published), and texts with the result or refusal expected.
    Each case: {"kind": "license"|"activation", "text", "options", "expect": dict | None, "refused": kind}."""
    first = Keyring.new()
    old_license = sign(make_payload(), first)
    ring = first.rotate()
    payload = make_payload()
    text = sign(payload, ring)
    prefix, raw = raw_of(text)
    tampered = bytearray(raw)
    tampered[20] ^= 0x01  # inside the merchant id
    kid, key = ring.signing_key()
    activation = sign_activation(payload.license_id, MACHINE, NOW, NOW + timedelta(days=30), key, kid)
    act_prefix, act_raw = raw_of(activation)
    act_tampered = bytearray(act_raw)
    act_tampered[-1] ^= 0x10
    now = int(NOW.timestamp())
    ids = {"merchantId": payload.merchant_id, "productId": payload.product_id}
    cases = {
        "valid": (
            "license",
            text,
            {"now": now, **ids},
            as_snippet_result(verify_license(text, ring, now=NOW)),
        ),
        "valid-pasted-lowercase-and-wrapped": (
            "license",
            text[:80].lower() + "\n  " + text[80:],
            {"now": now},
            "same",
        ),
        "signed-by-a-rotated-out-key": (
            "license",
            old_license,
            {"now": now},
            as_snippet_result(verify_license(old_license, ring, now=NOW)),
        ),
        "no-expiry": (
            "license",
            sign(make_payload(expires_at=None, max_machines=None), ring),
            {"now": now},
            "ok",
        ),
        "tampered": ("license", text_of(prefix, bytes(tampered)), {"now": now}, "bad_signature"),
        "prefix-changed": ("license", "LIX" + text[3:], {"now": now}, "bad_signature"),
        "truncated": ("license", text[:-9], {"now": now}, "malformed"),
        "not-base32": ("license", text[:10] + "1" + text[11:], {"now": now}, "malformed"),
        "unknown-key": ("license", sign(make_payload(), Keyring.new()), {"now": now}, "unknown_key"),
        "expired": ("license", text, {"now": now + 366 * 86400}, "expired"),
        "other-merchant": (
            "license",
            text,
            {"now": now, **ids, "merchantId": new_id("mer")},
            "wrong_merchant",
        ),
        "other-product": ("license", text, {"now": now, **ids, "productId": new_id("prd")}, "wrong_product"),
        "an-activation-as-a-license": ("license", "LIC" + activation[3:], {"now": now}, "malformed"),
        "activation": (
            "activation",
            activation,
            {"now": now, "licenseId": payload.license_id, "machine": MACHINE},
            {
                "kid": kid,
                "license_id": payload.license_id,
                "machine": MACHINE,
                "issued_at": now,
                "expires_at": now + 30 * 86400,
            },
        ),
        "activation-tampered": (
            "activation",
            text_of(act_prefix, bytes(act_tampered)),
            {"now": now},
            "bad_signature",
        ),
        "activation-other-machine": (
            "activation",
            activation,
            {"now": now, "machine": "another"},
            "wrong_machine",
        ),
        "activation-other-license": (
            "activation",
            activation,
            {"now": now, "licenseId": new_id("lic")},
            "wrong_license",
        ),
        "activation-ended": ("activation", activation, {"now": now + 30 * 86400}, "expired"),
    }
    for name, (kind, case_text, options, expect) in cases.items():
        if expect == "same":
            cases[name] = (kind, case_text, options, cases["valid"][3])
    # The shop's own verifier agrees with every expectation.
    for kind, case_text, options, expect in cases.values():
        verify = verify_license if kind == "license" else verify_activation
        named = {
            "now": NOW + timedelta(seconds=options["now"] - now),
            **({"merchant_id": options["merchantId"]} if "merchantId" in options else {}),
            **({"product_id": options["productId"]} if "productId" in options else {}),
            **({"license_id": options["licenseId"]} if "licenseId" in options else {}),
            **({"machine": options["machine"]} if "machine" in options else {}),
        }
        try:
            verify(case_text, ring, **named)
            assert not isinstance(expect, str) or expect == "ok"
        except Exception as error:
            assert getattr(error, "kind", None) == expect, (case_text, error)
    return {
        "jwks": json.loads(json.dumps(ring.jwks())),
        "cases": {
            name: {"kind": kind, "text": t, "options": o, "expect": e}
            for name, (kind, t, o, e) in cases.items()
        },
    }


@pytest.fixture(scope="module")
def cases() -> dict:
    return snippet_cases()


@pytest.fixture(scope="module")
def snippet():
    spec = importlib.util.spec_from_file_location("verify_license_snippet", PYTHON_SNIPPET)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_outcome(snippet, jwks: dict, case: dict):
    options = case["options"]
    try:
        if case["kind"] == "license":
            return snippet.verify_license(
                case["text"],
                jwks,
                now=options["now"],
                merchant_id=options.get("merchantId"),
                product_id=options.get("productId"),
            )
        return snippet.verify_activation(
            case["text"],
            jwks,
            now=options["now"],
            license_id=options.get("licenseId"),
            machine=options.get("machine"),
        )
    except snippet.LicenseError as error:
        return error.kind


def matches(outcome, expect) -> bool:
    return isinstance(outcome, dict) if expect == "ok" else outcome == expect


def test_the_python_snippet_needs_only_cryptography_and_the_standard_library():
    imported = set()
    for node in ast.walk(ast.parse(PYTHON_SNIPPET.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


def test_the_python_snippet_accepts_and_refuses_as_the_shop_does(snippet, cases):
    outcomes = {name: python_outcome(snippet, cases["jwks"], case) for name, case in cases["cases"].items()}
    assert {n: o for n, o in outcomes.items() if not matches(o, cases["cases"][n]["expect"])} == {}


def test_the_python_snippet_as_a_command(cases, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(cases["jwks"]))
    valid = cases["cases"]["valid"]
    shown = subprocess.run(
        [sys.executable, str(PYTHON_SNIPPET), str(keys), valid["text"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["license_id"] == valid["expect"]["license_id"]
    activation = cases["cases"]["activation"]
    shown = subprocess.run(
        [sys.executable, str(PYTHON_SNIPPET), str(keys), activation["text"], "--activation"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["machine"] == MACHINE
    refused = subprocess.run(
        [sys.executable, str(PYTHON_SNIPPET), str(keys), cases["cases"]["tampered"]["text"]],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and refused.stderr.startswith("bad_signature:")


# Runs every case through the snippet; prints {name: result or refusal kind} as JSON.
RUN_CASES = """
async function runCases(input) {
  const outcomes = {};
  for (const [name, c] of Object.entries(input.cases)) {
    const verify = c.kind === "license" ? verifyLicense : verifyActivation;
    try {
      outcomes[name] = await verify(c.text, input.jwks, c.options);
    } catch (error) {
      if (!(error instanceof LicenseError)) throw error;
      outcomes[name] = error.kind;
    }
  }
  return outcomes;
}
"""


def test_the_javascript_snippet_under_node(cases, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript snippet runs in Chromium (tests/browser) only")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"node {version.strip()} is older than 20, which the snippet names")
    script = tmp_path / "run.js"
    script.write_text(
        f"const {{ LicenseError, verifyLicense, verifyActivation }} = require({json.dumps(str(JS_SNIPPET))});\n"
        + RUN_CASES
        + "let input = ''; process.stdin.on('data', (d) => (input += d)).on('end', async () =>"
        + " console.log(JSON.stringify(await runCases(JSON.parse(input)))));\n"
    )
    ran = subprocess.run(
        [node, str(script)], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60
    )
    outcomes = json.loads(ran.stdout)
    assert {n: o for n, o in outcomes.items() if not matches(o, cases["cases"][n]["expect"])} == {}
