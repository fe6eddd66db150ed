"""What `make run` (python -m infra.local) tells its user: the demo merchant's id, beside its key, in
`.miaofa/local.json`; and a port it cannot use, or a MIAOFA_PORT that is no port, in one line naming
MIAOFA_PORT instead of a traceback."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_local_file_names_the_demo_merchant_whose_key_it_holds(runtime, shop):
    written = json.loads(runtime.as_json())  # what `make run` writes to .miaofa/local.json

    assert written["merchant_id"].startswith("mer_")
    response = shop.merchant("GET", "/merchant/shop", key=written["merchant_key"])
    assert response.status_code == 200 and response.json()["merchant_id"] == written["merchant_id"]


def make_run(port: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MIAOFA_PORT": port, "MIAOFA_STORE": "moto"}
    return subprocess.run(
        [sys.executable, "-m", "infra.local"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_busy_port_fails_in_one_line_naming_miaofa_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = make_run(str(port))

    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"miaofa: cannot listen on 127.0.0.1:{port}") and "MIAOFA_PORT" in line


@pytest.mark.parametrize("port", ["abc", "0x50", "70000", "-1"])
def test_a_miaofa_port_that_is_no_port_is_one_line(port):
    done = make_run(port)

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"miaofa: MIAOFA_PORT must be a port number from 1 to 65535, not {port!r}"
    ]
