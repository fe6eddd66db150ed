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
        elif kind == "AWS::ApiGatewayV2::Api":
            infra.routes.extend(_routes(props["Body"]))
    return infra


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
