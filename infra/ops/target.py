"""Where the CLI works: the local runtime (`.miaofa/local.json`) or a deployed stack's outputs."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from infra.cli_support import read_local_file

LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Stack output -> the logical id the rest of the CLI uses (the same ids as local.json's).
STACK_QUEUES = {
    "DeliveryQueueUrl": "DeliveryQueue",
    "DeliveryDLQUrl": "DeliveryDLQ",
    "NotifyQueueUrl": "NotifyQueue",
    "NotifyDLQUrl": "NotifyDLQ",
}
STACK_TABLES = {"OrdersTableName": "OrdersTable", "OpsTableName": "OpsTable", "ShopTableName": "ShopTable"}
CODES_KEY_OUTPUT = "CodesKeyId"  # optional: only `merchants create` needs it


class TargetError(Exception):
    """The CLI cannot tell where to work; a usage problem (exit 2)."""


@dataclass(frozen=True)
class Target:
    queues: dict[str, str]  # logical id -> URL
    tables: dict[str, str]  # logical id -> table name
    endpoint: str | None = None  # the embedded AWS, for local; None means real AWS
    region: str | None = None
    dynamodb_endpoint: str | None = None  # local DynamoDB when not the embedded AWS's (dynalite)
    codes_key: str | None = None  # the KMS key that seals each merchant's data key
    where: str = field(default="", compare=False)  # for messages: "local (http://…)" or "stack x"
    local_url: str | None = None  # the local runtime's HTTP adapter (its /_local switches); None on a stack
    local_secret: str | None = field(default=None, repr=False)  # the sandbox secret they take

    def queue(self, logical_id: str) -> str:
        try:
            return self.queues[logical_id]
        except KeyError:
            raise TargetError(f"{self.where} has no queue {logical_id}") from None

    def table(self, logical_id: str) -> str:
        try:
            return self.tables[logical_id]
        except KeyError:
            raise TargetError(f"{self.where} has no table {logical_id}") from None

    def codes_key_id(self) -> str:
        if not self.codes_key:
            hint = (
                f"no output {CODES_KEY_OUTPUT}; deploy the current template"
                if self.endpoint is None
                else ("no codes_key (written by an older `make run`?); restart `make run`")
            )
            raise TargetError(f"{self.where} has {hint}")
        return self.codes_key

    def use(self) -> None:
        """Point this process's AWS clients (boto3 and the PynamoDB stores, which read the
        environment as Lambda's do) at the target: the embedded AWS with dummy credentials, or
        the given region."""
        if self.endpoint:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                os.environ.pop(name, None)
            dynamodb = self.dynamodb_endpoint or self.endpoint
            os.environ.update(
                AWS_ENDPOINT_URL=self.endpoint, AWS_ENDPOINT_URL_DYNAMODB=dynamodb, **LOCAL_CREDENTIALS
            )
        if self.region:
            os.environ.update(AWS_DEFAULT_REGION=self.region, AWS_REGION=self.region)

    def sqs(self) -> Any:
        return boto3.client("sqs", **self._client_options())

    def cloudformation(self) -> Any:
        return boto3.client("cloudformation", **self._client_options())

    def _client_options(self) -> dict[str, Any]:
        # Few retries: an unreachable endpoint (a stopped `make run`) should fail in seconds.
        options: dict[str, Any] = {
            "region_name": self.region,
            "config": Config(connect_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
        }
        if self.endpoint:
            options.update(
                endpoint_url=self.endpoint,
                aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
        return options


def local_target(info: Mapping[str, Any], where: str = "the local runtime") -> Target:
    """A target from local.json's content (or `asdict(LocalInfo)`): its endpoint, queues and tables."""
    from infra.local.aws import REGION  # here: moto (local only) is not needed for a stack

    missing = [key for key in ("aws_endpoint", "queues", "tables") if not info.get(key)]
    if missing:
        raise TargetError(
            f"{where} has no {' or '.join(missing)} (written by an older `make run`?); restart `make run`"
        )
    return Target(
        queues=dict(info["queues"]),
        tables=dict(info["tables"]),
        endpoint=str(info["aws_endpoint"]),
        dynamodb_endpoint=info.get("dynamodb_endpoint") or None,
        codes_key=info.get("codes_key") or None,
        region=REGION,
        where=f"local ({info['aws_endpoint']})",
        local_url=info.get("url") or None,
        local_secret=info.get("sandbox_secret") or None,
    )


def stack_target(stack: str, outputs: Mapping[str, str], region: str | None) -> Target:
    """A target from a stack's outputs (`DeliveryQueueUrl`, …, `OpsTableName`)."""
    missing = [key for key in (*STACK_QUEUES, *STACK_TABLES) if key not in outputs]
    if missing:
        raise TargetError(f"stack {stack} has no output {', '.join(missing)}; deploy the current template")
    return Target(
        queues={STACK_QUEUES[key]: outputs[key] for key in STACK_QUEUES},
        tables={STACK_TABLES[key]: outputs[key] for key in STACK_TABLES},
        codes_key=outputs.get(CODES_KEY_OUTPUT),
        region=region,
        where=f"stack {stack}",
    )


def resolve(local_file: Path, stack: str | None, region: str | None) -> Target:
    """The stack when one is named, else the local runtime's file."""
    if stack:
        cloudformation = Target(queues={}, tables={}, region=region).cloudformation()
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        return stack_target(stack, outputs, region)
    missing = f"no target: {local_file} does not exist (start `make run`, or pass --stack NAME)"
    return local_target(read_local_file(local_file, missing, TargetError), where=str(local_file))
