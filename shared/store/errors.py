"""Reading botocore/PynamoDB failures without matching on message text."""

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException

# What DynamoDB, SQS, KMS, SES and Secrets Manager answer when a request exceeds their rate.
THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "RequestThrottled",
        "TooManyRequestsException",
    }
)


def condition_failed(error: PynamoDBException) -> bool:
    """True if a conditional write was refused because its condition did not hold."""
    return error.cause_response_code == "ConditionalCheckFailedException"


def retried(error: PynamoDBException) -> bool:
    """True if the SDK sent the request more than once: an earlier attempt may have applied (its answer
    lost), so a refusal may be this very write's own doing."""
    # PynamoDB re-raises botocore's error without its metadata; the original is its context.
    for cause in (error.cause, getattr(error.cause, "__context__", None)):
        if isinstance(cause, ClientError) and "RetryAttempts" in cause.response.get("ResponseMetadata", {}):
            return int(cause.response["ResponseMetadata"]["RetryAttempts"]) > 0
    return True  # cannot tell: assume it may have been


def throttled(error: BaseException) -> bool:
    """True if AWS refused a request for its rate (after the SDK's retries, which are spent)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, PynamoDBException):
            return cause.cause_response_code in THROTTLED
        if isinstance(cause, ClientError):
            return cause.response.get("Error", {}).get("Code") in THROTTLED
        cause = cause.__cause__
    return False
