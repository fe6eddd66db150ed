"""HTTP edges: request parsing and the one mapping of domain errors to API.md's error shape."""

import json
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, Field, ValidationError

from shared.errors import Busy, DomainError, Invalid, MalformedJson, UnsupportedContentType
from shared.store.errors import throttled

Model = TypeVar("Model", bound=BaseModel)

# Powertools logs each route's arguments at DEBUG ("Calling API Route Handler: {...}"): validated
# bodies and headers, so access tokens, Idempotency-Keys, e-mails and webhook URLs. Those never go to
# logs (tests/e2e/test_no_plaintext.py), so its router's logger stays at INFO whatever the rest is.
logging.getLogger("aws_lambda_powertools.event_handler.api_gateway").setLevel(logging.INFO)


class ErrorDetail(BaseModel):
    code: str
    message: str
    reference: str | None = Field(
        default=None, description="risk_blocked: what the buyer quotes to the shop (docs/risk.md)"
    )


class ErrorBody(BaseModel):
    """API.md's one error shape: {"error": {"code", "message"}}."""

    error: ErrorDetail


class GatewayRefusal(BaseModel):
    """API Gateway's own body when the authorizer refuses (HTTP APIs cannot shape it)."""

    message: str


_ERROR_MEANING = {
    400: "bad input: malformed JSON, or a bad signature",
    401: "no API key (API Gateway's own body)",
    403: "an unknown or revoked API key (API Gateway's own body)",
    404: "unknown, or not yours",
    409: "state conflict or out of stock",
    410: "gone: a license revoked (refunded, or by its merchant)",
    415: "a content type this route does not take",
    422: "well-formed input that breaks a rule",
    429: "rate limited",
    503: "busy (AWS throttled), or a payment provider did not answer: retry as it is after Retry-After",
}
_RISK_BLOCKED = "the merchant's risk rules refuse this order (risk_blocked, with a reference to quote)"
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def documented(
    status: int,
    description: str,
    model: type[BaseModel] | None = None,
    *,
    errors: Sequence[int] = (),
    media: str | None = None,
    pages: Sequence[int] = (),
    risk_blocked: bool = False,
) -> dict[int, Any]:
    """The `responses` of a route for its OpenAPI entry: its success (a model as JSON, or a text
    `media` type), and each error it can answer (always 422, which request validation may give),
    all in the one error shape but those in `pages`, which a hosted page answers as an HTML page in
    the buyer's language. Every route may be throttled by AWS (503 `busy`). With `risk_blocked`, 403
    is the app's own refusal (`risk_blocked`, with a reference), not API Gateway's."""
    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    elif media is not None:
        success["content"] = {media: {"schema": {"type": "object" if media.endswith("json") else "string"}}}
    else:
        success["content"] = {}  # no body (e.g. 204)
    answers: dict[int, Any] = {status: success}
    for code in sorted({*errors, 422, 503, *([403] if risk_blocked else [])} - set(pages)):
        gateway = code == 401 or (code == 403 and not risk_blocked)
        answers[code] = {
            "description": _RISK_BLOCKED if code == 403 and risk_blocked else _ERROR_MEANING[code],
            "content": {"application/json": {"model": GatewayRefusal if gateway else ErrorBody}},
        }
        if code in (429, 503):
            answers[code]["headers"] = _RETRY_AFTER
    for code in pages:
        answers[code] = {
            "description": _ERROR_MEANING[code],
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    return answers


# Every JSON answer of the API, success or error: those that carry a code, an access token, a link
# token or a secret (checkout, an order, the merchant's webhook secret, ...) are never kept by a
# browser or a proxy, and one rule for all cannot forget a route.
NO_STORE = {"Cache-Control": "no-store"}


def error_response(
    status: int,
    code: str,
    message: str,
    retry_after: int | None = None,
    details: dict[str, str] | None = None,
) -> Response[str]:
    body = json.dumps({"error": {"code": code, "message": message, **(details or {})}})
    headers = {**NO_STORE, **({"Retry-After": str(retry_after)} if retry_after is not None else {})}
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


def json_response(status: int, payload: Any) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(payload), headers=NO_STORE
    )


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `parameters` (for a route's `openapi_extensions`) for a query string that its handler
    validates with `model` itself, keeping rules Powertools has no words for (an unknown name is
    refused, an empty value is absent): the document and the check share the one model."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "allowEmptyValue": True,  # `?to=` is no `to`: the document says so, or a checker calls it a fault
            "schema": {k: v for k, v in field.items() if k != "default"},
        }
        for name, field in schema["properties"].items()
    ]
    return {"parameters": parameters}


def empty_clears(schema: dict[str, Any]) -> None:
    """A nullable text field's document (`Field(json_schema_extra=empty_clears)`) as its validator
    has it: "" is taken too, and clears the field as null does."""
    schema["anyOf"] = [*schema["anyOf"], {"const": ""}]


def request_body(
    description: str, model: type[BaseModel] | None = None, *, text: bool = False
) -> dict[str, Any]:
    """An OpenAPI `requestBody` (for `openapi_extensions`) for a body its handler parses itself:
    JSON by `model`, and/or `text/plain`; always optional, as those handlers take an empty body."""
    content: dict[str, Any] = {}
    if text:
        content["text/plain"] = {"schema": {"type": "string"}}
    if model is not None:
        content["application/json"] = {
            "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
        }
    return {"requestBody": {"description": description, "required": False, "content": content}}


def text_body(event: BaseProxyEvent) -> str:
    """The request body as text, whatever its content type (API Gateway base64-encodes non-text)."""
    try:
        return event.decoded_body or ""
    except UnicodeDecodeError:
        raise MalformedJson("request body is not UTF-8 text") from None


def is_json(content_type: str | None) -> bool:
    """True for a JSON body's media type (any parameters), or none given (a client that sends JSON
    without saying so); false for a form, multipart or text body, which a JSON route refuses (415)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("", "application/json")


def json_text(event: BaseProxyEvent) -> str:
    """The body of a request to a JSON route that parses its own body: its text, or 415."""
    if not is_json(event.headers.get("content-type")):
        raise UnsupportedContentType("this route takes application/json")
    return text_body(event)


class _JsonBodies(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, for JSON bodies only. It would parse a form body into the
    route's model (curl -d: a 422 about a field the client did send) and a multipart one too (with no
    boundary: a ValueError, a 500); a route of this API that takes a model takes JSON."""

    def _get_body(self, app: Any) -> dict[str, Any]:
        if not is_json(app.current_event.headers.get("content-type")):
            raise RequestUnsupportedContentType("Unsupported content type", errors=[])
        return self._parse_json_data(app)


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
        raise _invalid(error.errors()[0]) from None


def _invalid(problem: Any) -> Invalid:
    """A pydantic problem as the 422 the API documents: `invalid_<field>` and "<where>: <what>" (a
    whole-body problem about one field names it in its context's `field`)."""
    location = [str(part) for part in problem.get("loc", ())] or [
        str(field) for field in [(problem.get("ctx") or {}).get("field")] if field
    ]
    where = ".".join(location) or "body"
    return Invalid(
        f"{where}: {problem.get('msg', 'invalid')}", code=f"invalid_{location[0]}" if location else None
    )


def request_problem(error: RequestValidationError) -> DomainError:
    """Powertools' request validation (JSON bodies, path parameters) in the API's error shape."""
    problem = error.errors()[0]
    if problem.get("type") == "json_invalid":
        return MalformedJson("request body is not valid JSON")
    location = list(problem.get("loc", ()))
    if location and location[0] in ("body", "query", "path", "header"):
        location = location[1:]
    return _invalid({**problem, "loc": location})


def install_error_handlers(app: APIGatewayHttpResolver, logger: Logger) -> None:
    """Every DomainError becomes its documented status and code; anything else a logged 500. Also
    where the app's bodies are parsed: a route's model from JSON only (else 415)."""
    # Powertools builds each route's middleware stack from this attribute on the route's first call.
    app._request_validation_middleware = _JsonBodies()  # type: ignore[attr-defined]

    @app.exception_handler(DomainError)
    def _domain(error: DomainError) -> Response[str]:
        logger.info("request refused", extra={"error_code": error.code, "status": error.status})
        return error_response(error.status, error.code, error.message, error.retry_after, error.details)

    @app.exception_handler(RequestValidationError)
    def _request(error: RequestValidationError) -> Response[str]:
        return _domain(request_problem(error))

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(_: RequestUnsupportedContentType) -> Response[str]:
        return _domain(UnsupportedContentType("this route takes application/json"))

    @app.exception_handler(UnicodeDecodeError)
    def _not_text(_: UnicodeDecodeError) -> Response[str]:
        return _domain(MalformedJson("request body is not UTF-8 text"))

    @app.exception_handler(RecursionError)
    def _too_deep(_: RecursionError) -> Response[str]:
        return _domain(MalformedJson("request body is nested too deeply"))

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        if throttled(error):  # every write is safe to repeat, and what a failed checkout took goes back
            logger.warning("throttled by AWS", extra={"error": type(error).__name__})
            return _domain(
                Busy("the shop is busy; retry in a moment (with the same Idempotency-Key, if any)")
            )
        logger.exception("unexpected error")
        return error_response(500, "internal_error", "something went wrong on our side; please retry")
