"""HTTP edges: request parsing and the one mapping of domain errors to API.md's error shape."""

import json
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, ValidationError

from shared.errors import DomainError, Invalid, MalformedJson

Model = TypeVar("Model", bound=BaseModel)


def error_response(status: int, code: str, message: str) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(status_code=status, content_type="application/json", body=body)


def json_response(status: int, payload: Any) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(payload))


def text_body(event: BaseProxyEvent) -> str:
    """The request body as text, whatever its content type (API Gateway base64-encodes non-text)."""
    try:
        return event.decoded_body or ""
    except UnicodeDecodeError:
        raise MalformedJson("request body is not UTF-8 text") from None


def parse_json(raw: str | None) -> Any:
    """The request body as JSON, or MalformedJson (also for nesting too deep to parse)."""
    try:
        return json.loads(raw or "")
    except (ValueError, RecursionError):
        raise MalformedJson("request body is not valid JSON") from None


def validate(model: type[Model], data: Any) -> Model:
    """Validate input against a pydantic model; the first problem becomes a 422 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Invalid(
            f"{where}: {first['msg']}", code=f"invalid_{first['loc'][0]}" if first["loc"] else None
        ) from None


def install_error_handlers(app: APIGatewayHttpResolver, logger: Logger) -> None:
    """Every DomainError becomes its documented status and code; anything else a logged 500."""

    @app.exception_handler(DomainError)
    def _domain(error: DomainError) -> Response[str]:
        logger.info("request refused", extra={"error_code": error.code, "status": error.status})
        return error_response(error.status, error.code, error.message)

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "something went wrong on our side; please retry")
