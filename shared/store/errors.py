"""Reading botocore/PynamoDB failures without matching on message text."""

from pynamodb.exceptions import PynamoDBException


def condition_failed(error: PynamoDBException) -> bool:
    """True if a conditional write was refused because its condition did not hold."""
    return error.cause_response_code == "ConditionalCheckFailedException"
