"""Read template.yaml through samtranslator: the local runtime has no second copy of the infrastructure."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LOCAL_CODE_URI = "s3://local/code.zip"  # samtranslator wants S3; `sam package` makes the same swap
# Where the code and the dependencies layer come from is `sam build`'s business (the Makefile's
# build-<LogicalId> targets); here every function runs from the repository, on .venv's packages.
LOCAL_URIS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def translate(path: Path = TEMPLATE) -> dict[str, Any]:
    """The CloudFormation template that SAM would deploy."""
    sam = yaml_parse(path.read_text())
    for resource in sam.get("Resources", {}).values():
        if resource.get("Type") in LOCAL_URIS:
            resource.setdefault("Properties", {})[LOCAL_URIS[resource["Type"]]] = LOCAL_CODE_URI
    if "CodeUri" in sam.get("Globals", {}).get("Function", {}):
        sam["Globals"]["Function"]["CodeUri"] = LOCAL_CODE_URI
    session = boto3.session.Session(region_name="us-east-1")
    translator = Translator(None, Parser(), boto_session=session)
    return translator.translate(sam, {}, get_managed_policy_map=lambda: {})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorizer: str | None
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class QueueTrigger:
    queue: str
    function: str
    batch_size: int
    report_failures: bool


@dataclass(frozen=True)
class StreamTrigger:
    """A `Type: DynamoDB` event source: the table whose stream feeds the function."""

    table: str
    function: str
    batch_size: int
    starting_position: str
    report_failures: bool
    filters: tuple[str, ...] = ()  # FilterCriteria patterns, JSON
    maximum_retries: int = -1  # MaximumRetryAttempts; -1 retries until the record expires
    maximum_age: int = -1  # MaximumRecordAgeInSeconds; -1: as old as the stream keeps them


@dataclass
class SocketApi:
    """A WebSocket API (`ProtocolType: WEBSOCKET`): route key -> function, and its stage."""

    name: str
    selection_expression: str
    stage: str = ""
    routes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    function: str
    every_seconds: int


@dataclass
class Infrastructure:
    parameters: dict[str, Any]
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    mail_identities: list[Any] = field(default_factory=list)  # EmailIdentity values (Refs)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    triggers: list[QueueTrigger] = field(default_factory=list)
    streams: list[StreamTrigger] = field(default_factory=list)
    sockets: list[SocketApi] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)


def _function_in(value: Any) -> str:
    """The logical id of the function an integration/authorizer URI (Fn::Sub) points at."""
    sub = value["Fn::Sub"]
    if isinstance(sub, list):  # ["...${Var}...", {"Var": {"Fn::GetAtt": [function, "Arn"]}}]
        return str(next(iter(sub[1].values()))["Fn::GetAtt"][0])
    match = re.search(r"\$\{(\w+)\.Arn\}", sub)
    if not match:
        raise ValueError(f"cannot find a function in {value!r}")
    return match.group(1)


def _route_pattern(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(f"^{regex}$")


def _rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if not match:
        raise ValueError(f"local runtime supports rate() schedules only, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


def load(path: Path = TEMPLATE) -> Infrastructure:
    cfn = translate(path)
    infra = Infrastructure(parameters=cfn.get("Parameters", {}))
    for logical_id, resource in cfn["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            infra.tables[logical_id] = props
        elif kind == "AWS::SQS::Queue":
            infra.queues[logical_id] = props
        elif kind == "AWS::KMS::Key":
            infra.keys.append(logical_id)
        elif kind == "AWS::SecretsManager::Secret":
            infra.secrets.append(logical_id)
        elif kind == "AWS::SES::EmailIdentity":
            infra.mail_identities.append(props["EmailIdentity"])
        elif kind == "AWS::Lambda::Function":
            infra.functions[logical_id] = props
        elif kind == "AWS::Lambda::EventSourceMapping" and _is_stream(props["EventSourceArn"]):
            infra.streams.append(_stream_trigger(props))
        elif kind == "AWS::Lambda::EventSourceMapping":
            infra.triggers.append(
                QueueTrigger(
                    queue=props["EventSourceArn"]["Fn::GetAtt"][0],
                    function=props["FunctionName"]["Ref"],
                    batch_size=int(props.get("BatchSize", 10)),
                    report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
        elif kind == "AWS::Scheduler::Schedule":
            infra.schedules.append(
                Schedule(
                    function=props["Target"]["Arn"]["Fn::GetAtt"][0],
                    every_seconds=_rate_seconds(props["ScheduleExpression"]),
                )
            )
        elif kind == "AWS::ApiGatewayV2::Api" and props.get("ProtocolType") == "WEBSOCKET":
            infra.sockets.append(SocketApi(logical_id, props.get("RouteSelectionExpression", "")))
        elif kind == "AWS::ApiGatewayV2::Api":
            infra.routes.extend(_routes(props["Body"]))
    _socket_routes(cfn["Resources"], infra)
    return infra


def _mentions(value: Any) -> set[str]:
    """The logical ids a value refers to: `Ref`, `Fn::GetAtt`, and `${Id}` / `${Id.Attr}` in `Fn::Sub`."""
    if isinstance(value, list):
        return set().union(*map(_mentions, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            found.add(inner)
        elif key == "Fn::GetAtt":
            found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
        elif key == "Fn::Sub":
            text = inner[0] if isinstance(inner, list) else inner
            found.update(re.findall(r"\$\{([\w:]+)(?:\.\w+)?\}", text))
            found |= _mentions(inner[1:]) if isinstance(inner, list) else set()
        else:
            found |= _mentions(inner)
    return found


def _is_stream(source: Any) -> bool:
    return isinstance(source, dict) and "Fn::GetAtt" in source and source["Fn::GetAtt"][1] == "StreamArn"


def _stream_trigger(props: dict[str, Any]) -> StreamTrigger:
    filters = props.get("FilterCriteria", {}).get("Filters", [])
    return StreamTrigger(
        table=props["EventSourceArn"]["Fn::GetAtt"][0],
        function=props["FunctionName"]["Ref"],
        batch_size=int(props.get("BatchSize", 100)),
        starting_position=props.get("StartingPosition", "LATEST"),
        report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        filters=tuple(f["Pattern"] for f in filters),
        maximum_retries=int(props.get("MaximumRetryAttempts", -1)),
        maximum_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
    )


def _socket_routes(resources: dict[str, Any], infra: Infrastructure) -> None:
    """Each WebSocket route's function (Route → Target `integrations/<id>` → IntegrationUri), and the stage."""
    of_kind = {
        kind: {name: r.get("Properties", {}) for name, r in resources.items() if r["Type"] == kind}
        for kind in ("AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Stage")
    }
    integrations = of_kind["AWS::ApiGatewayV2::Integration"]
    for api in infra.sockets:
        for name, route in of_kind["AWS::ApiGatewayV2::Route"].items():
            if api.name not in _mentions(route.get("ApiId")):
                continue
            target = _mentions(route.get("Target")) & integrations.keys()
            if not target:
                raise ValueError(f"{name}: the local runtime needs a Target naming an integration")
            functions = _mentions(integrations[target.pop()].get("IntegrationUri")) & infra.functions.keys()
            if len(functions) != 1:
                raise ValueError(f"{name}: the local runtime needs a Lambda proxy integration")
            api.routes[route["RouteKey"]] = functions.pop()
        stages = [
            s["StageName"]
            for s in of_kind["AWS::ApiGatewayV2::Stage"].values()
            if api.name in _mentions(s.get("ApiId"))
        ]
        api.stage = stages[0] if stages else ""


def _routes(body: dict[str, Any]) -> list[Route]:
    authorizers = {
        name: _function_in(scheme["x-amazon-apigateway-authorizer"]["authorizerUri"])
        for name, scheme in body.get("components", {}).get("securitySchemes", {}).items()
    }
    routes = []
    for path, methods in body["paths"].items():
        for method, spec in methods.items():
            security = [name for entry in spec.get("security", []) for name in entry]
            routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    function=_function_in(spec["x-amazon-apigateway-integration"]["uri"]),
                    authorizer=authorizers[security[0]] if security else None,
                    pattern=_route_pattern(path),
                )
            )
    return routes
