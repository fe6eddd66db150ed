"""Schemathesis as a reviewer runs it (issue 18): its CLI with every default phase — the document's
examples, coverage of each parameter's edges, random fuzzing, and stateful sequences that feed one
operation's answers into the next — against the local runtime, with a merchant of its own. Whatever it
sends, the shop never answers with a server error.

The other checks (conformance of every answer to the document) are tests/e2e/test_api_fuzz.py's. Two
families schemathesis reports here are the shop's decisions, not faults: an undeclared method is 404,
as API Gateway answers it (tests/integration/test_gateway_methods.py), and some schema-valid requests
are refused by rules a schema cannot say (a signature, a random Idempotency-Key, an https logo URL)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ST = Path(sys.executable).parent / "st"  # schemathesis's CLI, beside this interpreter


def test_no_phase_of_schemathesis_gets_a_server_error(shop, tmp_path):
    from shared.adapters import merchants

    _, key = merchants().create_merchant("Schemathesis merchant")
    result = subprocess.run(
        [
            str(ST),
            "run",
            f"{shop.url}/openapi.json",
            "--url",
            shop.url,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "not_a_server_error",
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
    assert result.returncode == 0, summary
    assert "Tested: " in summary and "Stateful" in summary and "Coverage" in summary
