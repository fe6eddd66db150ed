"""Opening a shop with `miaofa-ops merchants create`, against the local runtime (its file, as `make
run` writes it) and against a deployed stack (here a stack in the embedded AWS): the merchant id and
its first API key are printed once, the key works at once and is stored as a hash only; a write whose
answer is lost and retried by the SDK still makes one merchant with one working key."""

import io
import json
import secrets
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import boto3
import pytest

from infra.ops.cli import Console, main
from infra.ops.target import local_target
from shared.settings import settings
from tests.faults_aws import lost_answer, on_table
from tests.support import stored_text


def ops(*argv: str, target=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), target=target, console=Console(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def its_shop(shop, key: str) -> dict:
    shop.runtime.gateway._auth_cache.clear()  # as if API Gateway's authorizer cache had run out
    response = shop.merchant("GET", "/merchant/shop", key=key)
    assert response.status_code == 200, response.text
    return response.json()


def created(out: str) -> dict:
    return json.loads(out)


def test_create_prints_the_id_and_a_working_key_once(runtime, shop):
    code, out, err = ops(
        "merchants", "create", "--name", "Neko Cards", target=local_target(asdict(runtime.info))
    )

    assert code == 0, err
    lines = dict(line.split() for line in out.splitlines())
    merchant_id, key = lines["merchant_id"], lines["api_key"]
    assert merchant_id.startswith("mer_") and key.startswith("mk_test_")
    assert "shown only now" in err and key not in err
    assert its_shop(shop, key)["merchant_id"] == merchant_id
    assert its_shop(shop, key)["name"] == "Neko Cards"
    assert key not in stored_text()
    listed = ops(
        "keys", "list", "--merchant", merchant_id, "--json", target=local_target(asdict(runtime.info))
    )
    assert key not in listed[1] and len(json.loads(listed[1])) == 1


def test_json_output_and_a_live_key(runtime, shop):
    code, out, _ = ops(
        "merchants",
        "create",
        "--name",
        "喵喵点卡",
        "--live",
        "--json",
        target=local_target(asdict(runtime.info)),
    )

    assert code == 0
    new = created(out)
    assert set(new) == {"merchant_id", "name", "key_id", "api_key"} and new["name"] == "喵喵点卡"
    assert new["api_key"].startswith("mk_live_") and new["key_id"].startswith("key_")
    assert its_shop(shop, new["api_key"])["merchant_id"] == new["merchant_id"]


@pytest.mark.parametrize("name", ["", "   ", "two\nlines", "x" * 101])
def test_a_name_the_shop_would_refuse_is_a_usage_error_and_creates_nothing(runtime, name):
    code, out, err = ops("merchants", "create", "--name", name, target=local_target(asdict(runtime.info)))
    assert code == 2 and out == "" and "--name" in err and len(err.splitlines()) == 1


def test_the_installed_script_against_the_file_make_run_writes(runtime, shop, tmp_path):
    """As an operator runs it: `make run`'s file names the runtime, its embedded AWS and codes key."""
    local_file = tmp_path / "local.json"
    local_file.write_text(json.dumps(asdict(runtime.info)))
    script = Path(sys.executable).parent / "miaofa-ops"

    done = subprocess.run(
        [
            str(script),
            "merchants",
            "create",
            "--name",
            "From a shell",
            "--json",
            "--local-file",
            str(local_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    new = created(done.stdout)
    assert its_shop(shop, new["api_key"])["name"] == "From a shell"
    assert new["api_key"] not in done.stderr


def test_a_stack_is_a_target_through_its_outputs(runtime, shop):
    """`--stack`: the shop table and the codes key come from the stack's outputs; a stack deployed
    before the CodesKeyId output is a one-line usage error that says so."""
    outputs = {
        "DeliveryQueueUrl": runtime.info.queues["DeliveryQueue"],
        "DeliveryDLQUrl": runtime.info.queues["DeliveryDLQ"],
        "NotifyQueueUrl": runtime.info.queues["NotifyQueue"],
        "NotifyDLQUrl": runtime.info.queues["NotifyDLQ"],
        "OrdersTableName": runtime.info.tables["OrdersTable"],
        "OpsTableName": runtime.info.tables["OpsTable"],
        "ShopTableName": runtime.info.tables["ShopTable"],
    }
    cloudformation = boto3.client("cloudformation")
    stacks = {}
    for kind, extra in (("current", {"CodesKeyId": runtime.info.codes_key}), ("older", {})):
        stacks[kind] = f"merchants-{kind}-{secrets.token_hex(4)}"
        cloudformation.create_stack(
            StackName=stacks[kind],
            TemplateBody=json.dumps(
                {
                    "Resources": {
                        "Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": stacks[kind]}}
                    },
                    "Outputs": {key: {"Value": value} for key, value in {**outputs, **extra}.items()},
                }
            ),
        )
    try:
        code, out, err = ops(
            "merchants",
            "create",
            "--name",
            "On a stack",
            "--json",
            "--stack",
            stacks["current"],
            "--region",
            "us-east-1",
        )
        older = ops(
            "merchants", "create", "--name", "Too early", "--stack", stacks["older"], "--region", "us-east-1"
        )
    finally:
        for name in stacks.values():
            cloudformation.delete_stack(StackName=name)

    assert code == 0, err
    assert its_shop(shop, created(out)["api_key"])["name"] == "On a stack"
    assert older[0] == 2 and older[1] == "" and len(older[2].splitlines()) == 1 and "CodesKeyId" in older[2]


@pytest.mark.parametrize(
    "lost",
    [
        ("PutItem", "merchant#"),  # the merchant's item
        ("PutItem", "apikey#"),  # its key's hash
        ("PutItem", "keys#"),  # its list of key records
    ],
)
def test_a_lost_answer_still_makes_one_merchant_with_one_working_key(runtime, shop, lost):
    operation, prefix = lost

    def ours(params: dict) -> bool:
        item = params.get("Item") or {}
        return on_table(settings().shop_table)(params) and item.get("pk", {}).get("S", "").startswith(prefix)

    with lost_answer(operation, ours) as fault:
        code, out, err = ops(
            "merchants",
            "create",
            "--name",
            "Lost answers",
            "--json",
            target=local_target(asdict(runtime.info)),
        )

    assert fault.hits == 1 and fault.seen == 2
    assert code == 0, err
    new = created(out)
    assert its_shop(shop, new["api_key"])["merchant_id"] == new["merchant_id"]
    listed = ops(
        "keys", "list", "--merchant", new["merchant_id"], "--json", target=local_target(asdict(runtime.info))
    )
    assert [record["key_id"] for record in json.loads(listed[1])] == [new["key_id"]]
