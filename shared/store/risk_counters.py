"""The risk engine's counters (shared/risk/counters.py), in the limits table: one item per (merchant,
counted kind, hashed value), keyed `risk#<merchant>#<subject>`.

Counted **written first**: one UpdateItem per counted identifier ADDs this order to the current
bucket of each window its rules look at and answers the item as it is after (ReturnValues ALL_NEW),
so a decision needs no read of its own and sees every order counted before it, concurrent ones
included (no read-then-write race). The write is conditional on `last` not being this order's token:
the SDK's retry of a write that applied is refused, and the item is then read (strongly consistent)
instead — the order is counted once (DESIGN.md).

The write stays small (every attribute an update names costs time at the store): buckets older than
the previous one are not removed by it but by a second UpdateItem, sent only when the answer shows
some — once per identifier and bucket period, at most, and never for an identifier seen once. An
idle item expires by TTL.
"""

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared import aws
from shared.money import Money
from shared.risk.counters import REFUNDS, CounterItem, Stored, counter_write, stale_buckets
from shared.risk.signals import Stage
from shared.settings import settings

SK = "risk"


class RiskCounters:
    def __init__(self) -> None:
        self._table = settings().limits_table
        self._dynamodb = aws.client("dynamodb")

    def count(
        self,
        merchant_id: str,
        item: CounterItem,
        now: datetime,
        amount: Money,
        stage: Stage,
        order_id: str,
        paid: bool = False,
    ) -> Stored:
        """Count this order on one identifier (and, with `paid`, in its paid history); its counts after."""
        write = counter_write(item, now, amount, stage, order_id, paid)
        names = {f"#n{i}": name for i, name in enumerate(write.add)} | {
            "#last": "last",
            "#expires": "expires",
        }
        values: dict[str, Any] = {f":v{i}": {"N": str(v)} for i, v in enumerate(write.add.values())}
        values[":token"] = {"S": write.token}
        values[":expires"] = {"N": str(write.expires)}
        adding = ", ".join(f"#n{i} :v{i}" for i in range(len(write.add)))
        update = ("ADD " + adding + " " if write.add else "") + "SET #last = :token, #expires = :expires"
        key = {"pk": {"S": f"risk#{merchant_id}#{item.subject}"}, "sk": {"S": SK}}
        found = self._write(key, update, names, values)
        if old := stale_buckets(found, now):
            self._forget(key, old)
        return found

    def count_refund(self, merchant_id: str, subject: str, order_id: str) -> None:
        """One more refunded order in an identifier's history (`refunds`), once per order: the write is
        conditional on `refunded` not naming it, so a retry or a second report changes nothing."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"risk#{merchant_id}#{subject}"}, "sk": {"S": SK}},
                UpdateExpression="ADD #refunds :one SET #refunded = :order",
                ConditionExpression="attribute_not_exists(#refunded) OR #refunded <> :order",
                ExpressionAttributeNames={"#refunds": REFUNDS, "#refunded": "refunded"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":order": {"S": order_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def _write(
        self, key: dict[str, Any], update: str, names: dict[str, str], values: dict[str, Any]
    ) -> Stored:
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#last) OR #last <> :token",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            return _numbers(answer["Attributes"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        # This order's own write, applied before its answer was lost: read what it left.
        found = self._dynamodb.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        return _numbers(found.get("Item", {}))

    def _forget(self, key: dict[str, Any], names: list[str]) -> None:
        """Remove buckets no window reads any more (never added to again, so no write races it)."""
        self._dynamodb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="REMOVE " + ", ".join(f"#n{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#n{i}": name for i, name in enumerate(names)},
        )


def _numbers(item: dict[str, Any]) -> dict[str, int]:
    return {name: int(value["N"]) for name, value in item.items() if "N" in value}
