"""Data access: the only place PynamoDB models live. Callers get domain models back."""

from pynamodb import settings as _pynamodb

from shared.aws import RETRIES

# PynamoDB makes each model's botocore client on first use, after this runs (the models live in this
# package), and hands `retry_configuration` to botocore as it is: the tables retry as every other
# client does (shared/aws.py), not by PynamoDB's 'LEGACY' default.
_pynamodb.default_settings_dict["retry_configuration"] = dict(RETRIES)  # type: ignore[assignment] # typed narrower
