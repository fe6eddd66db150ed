"""The embedded AWS keeps DynamoDB's guarantee that a conditional write is atomic, so the
concurrency tests that run on it can catch a real race instead of producing one."""

import contextlib
import sys
import threading

import boto3
import pytest


@pytest.fixture
def frequent_thread_switches():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # make interleavings inside the server likely
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def scratch_table(runtime):
    """The name of a table this test may make; dropped after it, so the runtime's tables stay the
    template's (tests/e2e/test_store_mode.py lists them, in whatever order the files run)."""
    yield "atomicity"
    client = boto3.client("dynamodb")
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_table(TableName="atomicity")


def test_concurrent_conditional_decrements_never_oversell(runtime, scratch_table, frequent_thread_switches):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName="atomicity",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    for round_ in range(15):
        key = {"pk": {"S": f"round-{round_}"}}
        client.put_item(TableName="atomicity", Item={**key, "remaining": {"N": "5"}})
        wins: list[int] = []
        start = threading.Barrier(40)

        def take() -> None:
            mine = boto3.client("dynamodb")
            start.wait()
            try:
                mine.update_item(
                    TableName="atomicity",
                    Key=key,
                    UpdateExpression="ADD remaining :minus",
                    ConditionExpression="remaining >= :one",
                    ExpressionAttributeValues={":minus": {"N": "-1"}, ":one": {"N": "1"}},
                )
                wins.append(1)
            except mine.exceptions.ConditionalCheckFailedException:
                pass

        threads = [threading.Thread(target=take) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        remaining = client.get_item(TableName="atomicity", Key=key, ConsistentRead=True)["Item"]["remaining"][
            "N"
        ]
        assert (len(wins), remaining) == (5, "0"), f"round {round_}"
