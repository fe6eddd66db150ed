"""The embedded AWS: moto's server, and the template's tables, queues and keys created in it."""

import contextlib
import io
import json
import logging
import re
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import boto3
import botocore.loaders
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import StreamShard
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

from infra.local import moto_query
from infra.local.template import Infrastructure

REGION = "us-east-1"
ACCOUNT = "123456789012"


DYNAMODB_LOCK = threading.Lock()  # held while the embedded moto serves one DynamoDB request


class _AtomicDynamoDB:
    """WSGI wrapper: one DynamoDB request at a time (DYNAMODB_LOCK).

    On AWS a conditional write checks and writes atomically. moto's server evaluates the condition
    and writes without a lock while serving requests on many threads, so two claims could both see
    `remaining >= 1`. Serialising DynamoDB calls (SQS long polls stay concurrent) gives the local
    runtime, and the concurrency tests run on it, AWS's guarantee.
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with DYNAMODB_LOCK:
            response = self._app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                getattr(response, "close", lambda: None)()


class _KeepAlive(MotoRequestHandler):
    """moto's request handler, answering on the connection the request came on.

    werkzeug's development server closes every connection after one response, so each SDK call
    paid a TCP connect, an accept and a new server thread (a sixth of the process's time in the
    flash sale, BENCHMARKS.md). Here the body is read to its declared length and the answer goes out
    with its Content-Length, so the SDK's pooled connection carries the next request.
    """

    disable_nagle_algorithm = True  # headers and body are two writes: no wait for a delayed ACK

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's reader stops at its end
            body = environ["wsgi.input"].read()
        else:
            body = self.rfile.read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return written.append

        try:
            result = self.server.app(environ, start_response)
            try:
                out = b"".join([*written, *result])
            finally:
                getattr(result, "close", lambda: None)()
        except Exception:  # moto's Flask app answers its own errors; this is a bug in the runtime
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            started[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            out = b"Internal Server Error"
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log (werkzeug's formats a line per request even when its logger drops it)."""


class _WSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server, remembering its open connections to close them when it stops."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        super().__init__(host, port, app, _KeepAlive)
        self.open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self.open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self.open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadedMotoServer):
    def _server_entry(self) -> None:  # moto's own, with the DynamoDB wrapper and keep-alive
        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = _WSGIServer(self._ip_address, self._port, app)
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        super().stop()
        if isinstance(self._server, _WSGIServer):  # idle keep-alive connections end with the server
            self._server.close_connections()


def share_sdk_data() -> None:
    """Parse each of botocore's data files (endpoints, service models) once per process.

    botocore parses them again in every session, and PynamoDB makes a session per thread: here
    gateway threads and pollers of every function share one process, so a burst of first calls
    parsed endpoints.json dozens of times over (a quarter of a cold flash sale, BENCHMARKS.md). On
    Lambda each container parses them once, in its own process. Every client of one session already
    shares these dicts (botocore's `instance_cache`), so sharing them between sessions changes nothing
    they read.
    """
    loader = botocore.loaders.JSONFileLoader
    if getattr(loader.load_file, "shared", False):
        return
    parse = loader.load_file
    parsed: dict[str, Any] = {}

    def load_file(self: botocore.loaders.JSONFileLoader, file_path: str) -> Any:
        data = parsed.get(file_path)
        if data is None:
            data = parse(self, file_path)
            if data is not None:
                parsed[file_path] = data
        return data

    load_file.shared = True  # type: ignore[attr-defined]
    loader.load_file = load_file  # type: ignore[method-assign]


SHARD_ITERATORS_KEPT = 10_000


class StreamWrites:
    """A count of the records moto's DynamoDB streams took, that a stream poller can wait on.

    moto runs in this process: rather than read an idle stream 50 times a second (12% of a core
    per poller), a poller sleeps until a write adds a record (`watch_stream_writes`)."""

    def __init__(self) -> None:
        self.count, self.watched = 0, False
        self._changed = threading.Condition()

    def written(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Until a record is added after `seen` was read (or `timeout` seconds, or `wake`)."""
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout)

    def wake(self) -> None:
        """Every waiting poller reads once more (one that stops, returns)."""
        self.written()


stream_writes = StreamWrites()


def watch_stream_writes() -> None:
    """Count every record moto's DynamoDB streams take (`stream_writes`)."""
    if stream_writes.watched:
        return
    add = StreamShard.add

    def counted(self: StreamShard, old: Any, new: Any) -> None:
        add(self, old, new)
        stream_writes.written()

    StreamShard.add = counted  # type: ignore[method-assign]
    stream_writes.watched = True


def bound_shard_iterators() -> None:
    """Keep the newest SHARD_ITERATORS_KEPT of moto's DynamoDB stream shard iterators, not all of them.

    moto keeps every iterator it hands out, and each GetRecords hands out one: a stream poller
    (triggers.StreamPoller) reading every 20 ms would grow the process by ~270 MB an hour. On AWS an iterator
    expires after 15 minutes; here the oldest are forgotten once there are too many (~15 MB).
    """
    backend = DynamoDBStreamsBackend
    if getattr(backend.get_records, "bounded", False):
        return
    get_records, forgetting = backend.get_records, threading.Lock()

    def bounded(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
        answer = get_records(self, iterator_arn, limit)
        with forgetting:
            while len(self.shard_iterators) > SHARD_ITERATORS_KEPT:
                self.shard_iterators.pop(next(iter(self.shard_iterators)), None)
        return answer

    bounded.bounded = True  # type: ignore[attr-defined]
    backend.get_records = bounded  # type: ignore[method-assign]


class EmbeddedAws:
    def __init__(self) -> None:
        self._server = _Server(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> str:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        moto_query.install()  # a Query reads its partition, not the whole table (docs/local-runtime.md)
        share_sdk_data()
        bound_shard_iterators()
        watch_stream_writes()
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
        self.stream_arns: dict[str, str] = {}  # table -> its stream's ARN
        self.attributes: dict[tuple[str, str], str] = {}  # any other Fn::GetAtt, set by the runtime

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]
        if "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "Arn":
            return self.arns[value["Fn::GetAtt"][0]]
        if "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "StreamArn":
            return self.stream_arns[value["Fn::GetAtt"][0]]
        if "Fn::GetAtt" in value and tuple(value["Fn::GetAtt"]) in self.attributes:
            return self.attributes[tuple(value["Fn::GetAtt"])]
        if "Fn::Sub" in value:
            text, names = value["Fn::Sub"], {}
            if isinstance(text, list):
                text, names = text[0], text[1]
            return re.sub(r"\$\{([\w:]+)(?:\.(\w+))?\}", lambda m: self._sub(m, names), text)
        raise ValueError(f"the local runtime cannot resolve {value!r}")

    def _sub(self, match: re.Match[str], names: dict[str, Any]) -> str:
        name, attribute = match.groups()
        if attribute is None and name in names:
            return self.resolve(names[name])
        if attribute is None:
            return self.refs[name]
        return self.resolve({"Fn::GetAtt": [name, attribute]})


def provision(
    infra: Infrastructure,
    parameters: dict[str, str],
    secrets: dict[str, str] | None = None,
    streams: bool = True,
) -> Provisioned:
    """Create every table, queue, key, secret and mail identity the template declares; names are their
    logical ids.

    `secrets` gives a secret's value by logical id (local config); a secret not given is `{}`.
    `streams=False` creates tables without their StreamSpecification (a store without streams)."""
    done = Provisioned(parameters)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    for name, props in infra.tables.items():
        spec: dict[str, Any] = {
            k: props[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes") if k in props
        }
        if streams and props.get("StreamSpecification"):
            spec["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        table = dynamodb.create_table(
            TableName=name, BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"), **spec
        )["TableDescription"]
        done.refs[name] = name
        done.arns[name] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        if table.get("LatestStreamArn"):
            done.stream_arns[name] = table["LatestStreamArn"]
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
