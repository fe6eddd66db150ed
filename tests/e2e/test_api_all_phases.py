"""Schemathesis as a reviewer runs it (issue 18): its CLI with every default phase — the document's
examples, coverage of each parameter's edges, random fuzzing, and stateful sequences that feed one
operation's answers into the next — against the local runtime, with a merchant of its own, and every
check but two: no server error, every answer as documented (status, content type, headers, schema), a
schema-valid request taken and a schema-violating one refused, a missing required header refused, a
deleted resource gone, a created one there.

Left out, each for its reason (docs/decisions.md, "Schemathesis's checks"):
- unsupported_method (ST204): an undeclared method is 404 `{"message": "Not Found"}`, as API Gateway's
  HTTP API answers it before any function runs (no 405, no Allow header); the local gateway does the
  same (tests/integration/test_gateway_methods.py).
- ignored_auth: it sends every merchant request twice more (no key, a wrong key), +60 % of this run in
  CI; the key's enforcement is tests/integration/test_merchant_isolation.py's (every merchant route,
  no key, another's key, a revoked key) and test_openapi.py's (every merchant operation declares it).

And ST202 (positive_data_acceptance) takes, besides its defaults, the answers to rules a schema cannot
state (CONFIG below): 422 everywhere, 400 on the payment callbacks (a signature no generator can make),
on the license routes (a signed license, the same) and on the listings (a signed cursor)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ST = Path(sys.executable).parent / "st"  # schemathesis's CLI, beside this interpreter
CONFIG = """
# ST202: a schema-valid request may still break a rule the document cannot state: 422 (API.md: "well-
# formed input that breaks a rule"): a printable name (str.isprintable), an e-mail at a reserved
# domain, `to` later than `from`, a random Idempotency-Key (shared/idempotency.py), a webhook URL that
# is not public (SSRF), a count written as 73.0 (JSON Schema's integer, refused as not a JSON integer).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

# A callback's signature (its headers are declared required) cannot be generated: 400 invalid_signature.
[[operations]]
include-path-regex = "^/webhooks/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

# A license is base32 of a payload and its Ed25519 signature (docs/licenses.md): what a generator makes
# of the string is 400 license_malformed (cut short, not base32), as a callback's signature is.
[[operations]]
include-path-regex = "^/api/licenses/(activate|deactivate|validate)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410", "422", "429", "5xx"]

# A cursor is signed for its merchant and filters: any other string is 400 invalid_cursor.
[[operations]]
include-name-regex = "^GET (/merchant/(products|orders)|/merchant/products/[^ ]+/stock/export)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def test_no_phase_of_schemathesis_finds_a_fault_by_any_check_that_applies(shop, tmp_path):
    from shared.adapters import merchants

    _, key = merchants().create_merchant("Schemathesis merchant")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            str(ST),
            "--config-file",
            str(config),
            "run",
            f"{shop.url}/openapi.json",
            "--url",
            shop.url,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--exclude-checks",
            "unsupported_method,ignored_auth",
            "--max-examples",
            "5",  # per operation: the other fuzz test (test_api_fuzz.py) takes 15 of each
            "--seed",
            "18",
            "--generation-deterministic",
            "--workers",
            "1",
            "-H",
            f"Authorization: Bearer {key}",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # its own files (.schemathesis/) there, not in the repository
        timeout=300,
        check=False,
    )
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    assert result.returncode == 0, result.stdout[result.stdout.find("FAILURES") :]
    assert "Tested: " in summary and "Stateful" in summary and "Coverage" in summary
