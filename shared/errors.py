"""Domain errors. One place (shared/http.py) maps them to HTTP responses."""


class DomainError(Exception):
    """Base of every error a client can be told about."""

    status = 400
    code = "bad_request"
    retry_after: int | None = None  # seconds, sent as Retry-After (every 429 and 503 has one)
    details: dict[str, str] = {}  # more fields of the answer's `error` object (a refusal's reference)

    def __init__(self, message: str, code: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after


class BadInput(DomainError):
    status, code = 400, "bad_request"


class MalformedJson(DomainError):
    status, code = 400, "malformed_json"


class UnsupportedContentType(DomainError):
    status, code = 415, "unsupported_media_type"


class InvalidSignature(DomainError):
    status, code = 400, "invalid_signature"


class PaymentMismatch(DomainError):
    """A verified payment that does not match its order (amount, currency or order)."""

    status, code = 400, "payment_mismatch"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class RiskBlocked(Forbidden):
    """The merchant's risk rules refuse this checkout. The buyer is told no reason, only a reference to
    quote; the decision is logged under it (docs/risk.md "At checkout")."""

    code = "risk_blocked"

    def __init__(self, reference: str, decision: dict[str, object] | None = None) -> None:
        self.decision = decision or {}  # the decision as a history entry holds it: for the log, not the buyer
        super().__init__(
            f"the shop cannot accept this order; quote reference {reference} to the shop if you think "
            "this is wrong"
        )
        self.details = {"reference": reference}


class StateConflict(DomainError):
    status, code = 409, "state_conflict"


class VersionConflict(DomainError):
    """A write made against a version of something that another write has since replaced."""

    status, code = 409, "version_conflict"


class OutOfStock(DomainError):
    status, code = 409, "out_of_stock"


class ImportInProgress(DomainError):
    status, code = 409, "import_in_progress"


class TooMany(DomainError):
    status, code, retry_after = 429, "rate_limited", 60


class ProviderDown(DomainError):
    """The payment provider did not answer; the request can be retried as it is."""

    status, code, retry_after = 503, "payment_provider_unavailable", 5


class Busy(DomainError):
    """AWS throttled a request past the SDK's retries: nothing is half-done; retry as it is."""

    status, code, retry_after = 503, "busy", 1


class Invalid(DomainError):
    """Well-formed input that breaks a rule (422)."""

    status, code = 422, "validation_error"


class AlreadyApplied(Exception):
    """A conditional write found its effect already in place (idempotent retry)."""


class IntegrityViolation(Exception):
    """An invariant would break (e.g. a slot bound to another order). Never retried into success."""
