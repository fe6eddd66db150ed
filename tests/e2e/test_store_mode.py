"""The runtime's DynamoDB is the store MIAOFA_STORE asks for (`make test` runs the end-to-end tests on
moto, then again on dynalite): the shop's own connection goes there, and moto and dynalite tell
themselves apart by what they answer."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import boto3
import pytest

from shared.adapters import payment_events
from shared.store.payment_events import PaymentEventItem

pytestmark = pytest.mark.e2e

ASKED = os.environ.get("MIAOFA_STORE") or "moto"


def test_the_shop_runs_on_the_store_asked_for(runtime):
    info = runtime.info
    assert info.store == ASKED
    payment_events()  # names the table of the store's model
    client = PaymentEventItem._get_connection().connection.client  # the shop's own DynamoDB client
    assert client.meta.endpoint_url == info.dynamodb_endpoint
    assert (info.dynamodb_endpoint == info.aws_endpoint) == (ASKED == "moto")

    # The runtime turns TTL on for this table; moto keeps it, dynalite has no UpdateTimeToLive.
    table = info.tables["PaymentEventsTable"]
    status = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"]
    assert status == {"moto": "ENABLED", "dynalite": "DISABLED"}[ASKED]

    # The tables are on the asked store only: on dynalite, moto serves no DynamoDB table at all.
    on_moto = sorted(boto3.client("dynamodb", endpoint_url=info.aws_endpoint).list_tables()["TableNames"])
    assert on_moto == ([] if ASKED == "dynalite" else sorted(info.tables.values()))


def test_the_ops_cli_reads_the_tables_where_the_runtime_keeps_them(runtime, tmp_path):
    """From another shell, as after `MIAOFA_STORE=dynalite make run`: only local.json says where DynamoDB is."""
    local_file = tmp_path / "local.json"
    local_file.write_text(json.dumps(asdict(runtime.info)))
    fresh_shell = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script = Path(sys.executable).parent / "miaofa-ops"

    done = subprocess.run(
        [str(script), "reports", "--local-file", str(local_file)],
        env=fresh_shell,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
