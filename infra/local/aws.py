"""The embedded AWS: moto's server, and the template's tables, queues and keys created in it."""

import json
import logging
import sys
import threading
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

from infra.local import moto_query
from infra.local.template import Infrastructure

REGION = "us-east-1"
ACCOUNT = "123456789012"


class _AtomicDynamoDB:
    """WSGI wrapper: one DynamoDB request at a time.

    On AWS a conditional write checks and writes atomically. moto's server evaluates the condition
    and writes without a lock while serving requests on many threads, so two claims could both see
    `remaining >= 1`. Serialising DynamoDB calls (SQS long polls stay concurrent) gives the local
    runtime, and the concurrency tests run on it, AWS's guarantee.
    """

    def __init__(self, app: Any) -> None:
        self._app, self._lock = app, threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            response = self._app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                getattr(response, "close", lambda: None)()


class _Server(ThreadedMotoServer):
    def _server_entry(self) -> None:  # moto's own, with the DynamoDB wrapper around its app
        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class EmbeddedAws:
    def __init__(self) -> None:
        self._server = _Server(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        moto_query.install()  # a Query reads its partition, not the whole table (docs/local-runtime.md)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()


def _enable_time_to_live(dynamodb: Any, table: str, specification: dict[str, Any]) -> bool:
    """Turn on the table's TTL; False if the store has no TTL (dynalite has no UpdateTimeToLive)."""
    try:
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=specification)
    except ClientError as error:
        if error.response["Error"]["Code"] == "UnknownOperationException":
            return False
        raise
    return True


class Provisioned:
    """What `Ref` and `Fn::GetAtt ... Arn` resolve to for each created resource."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.refs: dict[str, str] = dict(parameters)
        self.arns: dict[str, str] = {}

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]
        if "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "Arn":
            return self.arns[value["Fn::GetAtt"][0]]
        raise ValueError(f"the local runtime cannot resolve {value!r}")


def provision(
    infra: Infrastructure, parameters: dict[str, str], secrets: dict[str, str] | None = None
) -> Provisioned:
    """Create every table, queue, key, secret and mail identity the template declares; names are their
    logical ids.

    `secrets` gives a secret's value by logical id (local config); a secret not given is `{}`."""
    done = Provisioned(parameters)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    for name, props in infra.tables.items():
        spec = {
            k: props[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes") if k in props
        }
        dynamodb.create_table(TableName=name, BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"), **spec)
        done.refs[name] = name
        done.arns[name] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    without_ttl: list[str] = []
    for name, props in infra.tables.items():
        # A new table is CREATING for a while (on AWS, and on dynalite), and refuses items until ACTIVE.
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200}
        )
        ttl = props.get("TimeToLiveSpecification", {})
        if ttl.get("Enabled") and not _enable_time_to_live(dynamodb, name, ttl):
            without_ttl.append(name)
    if without_ttl:  # TTL is housekeeping here: no code relies on an expired item being gone
        print(
            f"miaofa: the DynamoDB at {dynamodb.meta.endpoint_url} has no UpdateTimeToLive;"
            f" expired items stay in {', '.join(without_ttl)}",
            file=sys.stderr,
        )
    # Dead-letter queues first, so redrive policies can name them.
    for name, props in sorted(infra.queues.items(), key=lambda item: "RedrivePolicy" in item[1]):
        attributes: dict[str, str] = {
            k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod") if k in props
        }
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": done.resolve(policy["deadLetterTargetArn"]),
                    "maxReceiveCount": int(policy["maxReceiveCount"]),
                }
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        done.refs[name] = url
        done.arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    for name in infra.keys:
        key = kms.create_key(Description=f"local {name}")["KeyMetadata"]
        done.refs[name], done.arns[name] = key["KeyId"], key["Arn"]
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    for name in infra.secrets:
        value = (secrets or {}).get(name, "{}")
        arn = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
        done.refs[name], done.arns[name] = arn, arn
    ses = boto3.client("ses", region_name=REGION)
    for identity in infra.mail_identities:
        ses.verify_email_identity(EmailAddress=done.resolve(identity))
    return done
