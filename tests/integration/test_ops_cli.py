"""`miaofa-ops` against the embedded AWS: listing loses no message, replay moves exactly what was
selected and delivers once, purge asks first, reports read the ops table.

Each test gets its own dead-letter queue and source queue (the template's redrive settings), so it
sees only its own messages; the source queue is fed to the real deliver function on demand."""

import io
import json
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from infra.local.triggers import QueuePoller
from infra.ops.cli import Console, main
from infra.ops.target import Target, local_target
from shared.adapters import orders
from shared.orders import utcnow
from shared.store.ops import OpsStore
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import make_queue_pair, new_codes, poll, stored_order


@dataclass(frozen=True)
class Queues:
    source: str
    source_arn: str
    dlq: str

    @property
    def dlq_name(self) -> str:
        return self.dlq.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def queues(runtime):
    sqs = boto3.client("sqs")
    source, arn, dlq = make_queue_pair(visibility=60, max_receives=5)
    yield Queues(source, arn, dlq)
    sqs.delete_queue(QueueUrl=source)
    sqs.delete_queue(QueueUrl=dlq)


@pytest.fixture
def target(runtime, queues) -> Target:
    info = asdict(runtime.info)
    info["queues"] = {**info["queues"], "DeliveryQueue": queues.source, "DeliveryDLQ": queues.dlq}
    return local_target(info)


def ops(target: Target, *argv: str, stdin: str = "", now: datetime | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out=out, err=err, stdin=io.StringIO(stdin))
    if now is not None:
        console.now = lambda: now
    code = main(list(argv), target=target, console=console)
    return Result(code, out.getvalue(), err.getvalue())


def paid_order(shop, error: str | None = None, failures: int = 1) -> dict:
    """A PAID order whose delivery message is ours to place; `error` is its recorded delivery failure."""
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order, due_in=timedelta(hours=1))
    for _ in range(failures if error else 0):
        orders().record_delivery_failure(order["order_id"], error, utcnow())
    return order


def dead_letter(queues: Queues, body: str | dict) -> str:
    """Put a message straight into the test's DLQ; returns its message id."""
    text = body if isinstance(body, str) else json.dumps(body)
    return boto3.client("sqs").send_message(QueueUrl=queues.dlq, MessageBody=text)["MessageId"]


def for_order(order: dict) -> dict:
    return {"order_id": order["order_id"]}


def bodies(url: str) -> list[dict | str]:
    """The visible messages' bodies (at most 10), left visible."""
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    )
    return sorted((json.loads(m["Body"]) for m in messages), key=json.dumps)


def counts(url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def deliver_from(runtime, queues: Queues) -> int:
    """Feed the test's source queue to the real deliver function once; returns how many it held."""
    poller = QueuePoller(runtime.functions["DeliverFunction"], queues.source, queues.source_arn, 10, True)
    return poller.poll_once(wait_seconds=1)


def line_with(text: str, output: str) -> str:
    (line,) = [line for line in output.splitlines() if text in line]
    return line


def test_list_shows_every_message_with_its_order_and_leaves_them_all_in_the_queue(shop, queues, target):
    failing, waiting = paid_order(shop, error="InvalidTag"), paid_order(shop)
    failing_msg, waiting_msg = (
        dead_letter(queues, for_order(failing)),
        dead_letter(queues, for_order(waiting)),
    )
    junk_msg = dead_letter(queues, "not json at all")
    unknown_msgs = [dead_letter(queues, {"order_id": f"ord_{secrets.token_hex(10)}"}) for _ in range(9)]
    every = {failing_msg, waiting_msg, junk_msg, *unknown_msgs}  # 12: more than one receive batch

    listed = ops(target, "dlq", "list")

    assert listed.code == 0, listed.err
    for message_id in every:
        line_with(message_id, listed.out)
    assert all(
        word in line_with(failing_msg, listed.out) for word in (failing["order_id"], "PAID", "InvalidTag")
    )
    assert "PAID" in line_with(waiting_msg, listed.out)
    assert "(not a delivery message)" in line_with(junk_msg, listed.out)
    assert "(unknown order)" in line_with(unknown_msgs[0], listed.out)
    assert listed.out.splitlines()[-1] == f"12 messages in {queues.dlq_name}"
    assert counts(queues.dlq) == (12, 0)  # all still there, and visible again

    rows = json.loads(ops(target, "dlq", "list", "--json").out)
    assert {row["message_id"] for row in rows} == every
    (row,) = [row for row in rows if row["message_id"] == failing_msg]
    assert row["status"] == "PAID" and row["delivery_error"] == "InvalidTag" and row["delivery_failures"] == 1
    assert row["receive_count"] >= 1 and row["age_seconds"] >= 0
    assert counts(queues.dlq) == (12, 0)


def test_show_gives_the_full_picture_by_message_or_order_id_and_no_secret(shop, queues, target):
    order = paid_order(shop, error="IntegrityViolation: order has 0 codes for a quantity of 1", failures=2)
    message_id = dead_letter(queues, for_order(order))

    by_order = ops(target, "dlq", "show", order["order_id"])
    by_message = ops(target, "dlq", "show", message_id)

    assert by_order.code == by_message.code == 0, by_order.err
    for expected in (
        message_id,
        json.dumps(for_order(order)),
        "first received",
        "PAID",
        "IntegrityViolation: order has 0 codes for a quantity of 1 (2 failed attempts)",
        "order.created",
        "payment.succeeded",
    ):
        assert expected in by_order.out and expected in by_message.out
    record = stored_order(order["order_id"])
    for secret in (order["access_token"], record.access_token_hash, record.email):
        assert secret not in by_order.out
    details = json.loads(ops(target, "dlq", "show", message_id, "--json").out)
    assert [e["type"] for e in details[0]["order"]["history"]] == ["order.created", "payment.succeeded"]
    assert details[0]["order"]["delivery_failures"] == 2 and details[0]["order"]["redrives"] == 0
    assert "access_token_hash" not in json.dumps(details)
    assert counts(queues.dlq) == (1, 0)


def test_show_of_an_unknown_id_is_one_line_and_exit_1(queues, target):
    dead_letter(queues, {"order_id": "ord_somebody_else"})
    shown = ops(target, "dlq", "show", "ord_nobody")
    assert shown.code == 1 and shown.out == ""
    assert (
        shown.err == f"miaofa-ops: no message with message id or order id ord_nobody in {queues.dlq_name}\n"
    )


def test_replay_by_order_moves_only_that_message(runtime, shop, queues, target):
    first, chosen, last = paid_order(shop), paid_order(shop), paid_order(shop)
    for order in (first, chosen, last):
        dead_letter(queues, for_order(order))

    replayed = ops(target, "dlq", "replay", "--order", chosen["order_id"])

    assert replayed.code == 0, replayed.err
    assert f"order {chosen['order_id']} (PAID" in line_with("replayed 1/1", replayed.out)
    assert replayed.out.splitlines()[-1] == f"replayed 1 of 3 messages in {queues.dlq_name}"
    assert bodies(queues.source) == [for_order(chosen)]
    assert bodies(queues.dlq) == sorted([for_order(first), for_order(last)], key=json.dumps)
    assert deliver_from(runtime, queues) == 1
    assert stored_order(chosen["order_id"]).status == "DELIVERED"
    assert stored_order(first["order_id"]).status == stored_order(last["order_id"]).status == "PAID"


def test_replay_of_several_orders_and_of_an_absent_one(shop, queues, target):
    one, two = paid_order(shop), paid_order(shop)
    dead_letter(queues, for_order(one))
    dead_letter(queues, for_order(two))

    absent = ops(target, "dlq", "replay", "--order", "ord_not_here")
    assert absent.code == 1 and "replayed 0 of 2" in absent.out
    assert absent.err == f"miaofa-ops: no message in {queues.dlq_name} for order ord_not_here\n"
    assert counts(queues.dlq) == (2, 0) and counts(queues.source) == (0, 0)

    both = ops(target, "dlq", "replay", "--order", one["order_id"], "--order", two["order_id"])
    assert both.code == 0 and "replayed 2 of 2" in both.out
    assert bodies(queues.source) == sorted([for_order(one), for_order(two)], key=json.dumps)
    assert counts(queues.dlq) == (0, 0)


def test_a_dry_run_lists_what_it_would_replay_and_changes_nothing(shop, queues, target):
    order = paid_order(shop)
    message_id = dead_letter(queues, for_order(order))
    dead_letter(queues, "junk")

    dry = ops(target, "dlq", "replay", "--all", "--dry-run")

    assert dry.code == 0, dry.err
    assert f"order {order['order_id']}" in line_with(message_id, dry.out)
    assert (
        dry.out.splitlines()[-1]
        == f"would replay 2 of 2 messages in {queues.dlq_name} (dry run: nothing changed)"
    )
    assert counts(queues.dlq) == (2, 0) and counts(queues.source) == (0, 0)
    assert stored_order(order["order_id"]).status == "PAID"


def test_older_than_selects_by_the_time_a_message_was_sent(queues, target):
    dead_letter(queues, {"order_id": "ord_old"})
    sent = time.time()
    poll(lambda: time.time() > sent + 1.5, every=0.1)  # SentTimestamps a second and a half apart
    dead_letter(queues, {"order_id": "ord_new"})
    now = datetime.now(UTC)  # ages as of right now, however slowly the replay itself runs

    replayed = ops(target, "dlq", "replay", "--older-than", "1s", now=now)

    assert replayed.code == 0, replayed.err
    assert "replayed 1 of 2" in replayed.out
    assert bodies(queues.source) == [{"order_id": "ord_old"}]
    assert bodies(queues.dlq) == [{"order_id": "ord_new"}]


def test_error_selects_by_the_orders_last_delivery_error(shop, queues, target):
    tag = paid_order(shop, error="InvalidTag")
    integrity = paid_order(
        shop, error="IntegrityViolation: slot 000000000007 read for an order it is not bound to"
    )
    clean = paid_order(shop)
    for order in (tag, integrity, clean):
        dead_letter(queues, for_order(order))

    assert ops(target, "dlq", "replay", "--error", "invalidtag").code == 0  # any case
    assert bodies(queues.source) == [for_order(tag)]

    assert ops(target, "dlq", "replay", "--error", "not bound").code == 0
    assert bodies(queues.source) == sorted([for_order(tag), for_order(integrity)], key=json.dumps)
    assert bodies(queues.dlq) == [for_order(clean)]


def test_replaying_twice_delivers_once_and_a_delivered_order_is_left_alone(runtime, shop, queues, target):
    order = paid_order(shop, error="InvalidTag")
    dead_letter(queues, for_order(order))

    assert ops(target, "dlq", "replay", "--order", order["order_id"]).code == 0
    assert deliver_from(runtime, queues) == 1
    delivered = shop.wait_for(order, "DELIVERED")
    history = stored_order(order["order_id"]).history

    dead_letter(queues, for_order(order))  # the same message, dead-lettered again
    again = ops(target, "dlq", "replay", "--order", order["order_id"])
    assert again.code == 0 and f"order {order['order_id']} (DELIVERED" in again.out
    assert deliver_from(runtime, queues) == 1

    assert stored_order(order["order_id"]).history == history
    assert [e.type for e in history].count("order.delivered") == 1
    assert shop.wait_for(order, "DELIVERED")["items"] == delivered["items"]
    assert counts(queues.source) == (0, 0) and counts(queues.dlq) == (0, 0)  # consumed, not failed


def test_purge_refuses_a_wrong_confirmation_and_empties_the_queue_when_confirmed(queues, target):
    for n in range(3):
        dead_letter(queues, {"order_id": f"ord_purge_{n}"})

    refused = ops(target, "dlq", "purge", stdin="DeliveryDLQ\n")
    assert refused.code == 1
    assert f"Type the queue name ({queues.dlq_name}) to confirm" in refused.err
    assert refused.err.splitlines()[-1].endswith(
        f"purge refused: 'DeliveryDLQ' is not {queues.dlq_name}; nothing deleted"
    )
    assert counts(queues.dlq) == (3, 0)

    purged = ops(target, "dlq", "purge", stdin=f"{queues.dlq_name}\n")
    assert purged.code == 0, purged.err
    assert f"purged {queues.dlq_name}: 3 messages were there" in purged.out
    poll(lambda: counts(queues.dlq) == (0, 0))


def test_purge_yes_does_not_ask(queues, target):
    dead_letter(queues, "junk")
    purged = ops(target, "dlq", "purge", "--yes", stdin="anything but the name\n")
    assert purged.code == 0 and purged.err == ""
    assert f"purged {queues.dlq_name}: 1 message was there" in purged.out
    poll(lambda: counts(queues.dlq) == (0, 0))
    assert ops(target, "dlq", "purge").out == f"{queues.dlq_name} is empty; nothing to purge\n"


@pytest.fixture
def ops_table(runtime):
    """An empty table shaped like the template's OpsTable."""
    client = boto3.client("dynamodb")
    real = runtime.info.tables["OpsTable"]
    shape = client.describe_table(TableName=real)["Table"]
    name = f"ops-reports-{secrets.token_hex(4)}"
    client.create_table(
        TableName=name,
        KeySchema=shape["KeySchema"],
        AttributeDefinitions=shape["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    OpsStore(table=real)  # the store's table name is process-wide: give the runtime its own back
    client.delete_table(TableName=name)


def test_reports_show_the_newest_first_or_say_there_are_none(runtime, ops_table):
    info = asdict(runtime.info)
    info["tables"] = {**info["tables"], "OpsTable": ops_table}
    target = local_target(info)
    assert ops(target, "reports").out == "no reconcile reports yet\n"

    start = datetime(2030, 1, 1, tzinfo=UTC)
    store = OpsStore(table=ops_table)
    for n in range(3):
        store.save_report(
            "reconcile", start + timedelta(minutes=n), {"redriven": n, "stock": {"checked": 10 + n}}
        )

    shown = ops(target, "reports", "--last", "2")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines() == [
        "reconcile report at 2030-01-01T00:02:00+00:00",
        "  redriven: 2",
        "  stock:",
        "    checked: 12",
        "",
        "reconcile report at 2030-01-01T00:01:00+00:00",
        "  redriven: 1",
        "  stock:",
        "    checked: 11",
    ]
    as_json = json.loads(ops(target, "reports", "--json", "--last", "1").out)
    assert as_json == [{"at": "2030-01-01T00:02:00+00:00", "redriven": 2, "stock": {"checked": 12}}]


def test_the_file_make_run_writes_is_the_default_kind_of_target(runtime, shop, tmp_path):
    """`--local-file` (as `.miaofa/local.json` by default) against the runtime's own queues."""
    local_file = tmp_path / "local.json"
    local_file.write_text(json.dumps(asdict(runtime.info)))
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    # A stale message for an already delivered order, in the real DeliveryDLQ: replaying it is harmless.
    boto3.client("sqs").send_message(
        QueueUrl=runtime.info.queues["DeliveryDLQ"], MessageBody=json.dumps(for_order(order))
    )

    shown = ops_in_process("dlq", "show", order["order_id"], "--local-file", str(local_file))
    assert shown.code == 0 and "DELIVERED" in shown.out
    replayed = ops_in_process("dlq", "replay", "--order", order["order_id"], "--local-file", str(local_file))
    assert replayed.code == 0 and "-> DeliveryQueue" in replayed.out

    assert ops_in_process("dlq", "show", order["order_id"], "--local-file", str(local_file)).code == 1


def ops_in_process(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), console=Console(out=out, err=err))
    return Result(code, out.getvalue(), err.getvalue())


def test_an_unreachable_runtime_is_a_one_line_error(tmp_path):
    """Run as the installed script: a dead endpoint must not leak into this process's environment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    dead = f"http://127.0.0.1:{port}"
    local_file = tmp_path / "local.json"
    local_file.write_text(
        json.dumps(
            {
                "aws_endpoint": dead,
                "queues": {"DeliveryDLQ": f"{dead}/1/DeliveryDLQ"},
                "tables": {"OrdersTable": "x"},
            }
        )
    )
    script = Path(sys.executable).parent / "miaofa-ops"

    done = subprocess.run(
        [str(script), "dlq", "list", "--local-file", str(local_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and dead in done.stderr and "Traceback" not in done.stderr


def test_a_stack_is_a_target_through_its_outputs(runtime, queues):
    """`--stack`: the queues and tables come from the stack's outputs (here a stack in the embedded AWS)."""
    outputs = {
        "DeliveryQueueUrl": queues.source,
        "DeliveryDLQUrl": queues.dlq,
        "NotifyQueueUrl": runtime.info.queues["NotifyQueue"],
        "NotifyDLQUrl": runtime.info.queues["NotifyDLQ"],
        "OrdersTableName": runtime.info.tables["OrdersTable"],
        "OpsTableName": runtime.info.tables["OpsTable"],
        "ShopTableName": runtime.info.tables["ShopTable"],
    }
    stack = f"ops-{secrets.token_hex(4)}"
    boto3.client("cloudformation").create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Marker": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": stack}}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )
    message_id = dead_letter(queues, {"order_id": "ord_in_a_stack"})

    try:
        listed = ops_in_process("dlq", "list", "--stack", stack, "--region", "us-east-1")
    finally:
        boto3.client("cloudformation").delete_stack(StackName=stack)

    assert listed.code == 0, listed.err
    assert "ord_in_a_stack" in line_with(message_id, listed.out)
    missing = ops_in_process("dlq", "list", "--stack", "no-such-stack", "--region", "us-east-1")
    assert missing.code == 1 and missing.err.startswith("miaofa-ops: AWS refused: ValidationError")
    assert len(missing.err.splitlines()) == 1
