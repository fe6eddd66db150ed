"""The ops CLI's pure parts: durations, the replay rate, selection, targets, output and usage errors."""

import io
from datetime import UTC, datetime, timedelta

import pytest

from infra.ops.cli import Console, main
from infra.ops.dlq import DeadLetter
from infra.ops.pacing import RateLimiter
from infra.ops.selection import Selection, parse_duration
from infra.ops.target import TargetError, local_target, stack_target
from infra.ops.views import age, report_lines
from shared.orders import Order

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 5M ", 300), ("0s", 0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "1.5h", "2w", "-1h", "1h 30m", "h1"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_rate_limiter_spaces_calls_evenly():
    time = FakeTime()
    limiter = RateLimiter(4, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        limiter.wait()
    assert time.slept == [0.25, 0.25, 0.25, 0.25]  # the first goes at once; 5 calls take 1 s at 4/s
    assert time.now == 101.0


def test_the_rate_limiter_does_not_wait_after_slow_work_nor_make_it_up_later():
    time = FakeTime()
    limiter = RateLimiter(10, clock=time.clock, sleep=time.sleep)
    limiter.wait()
    time.now += 1.0  # the replay itself took a second
    limiter.wait()
    limiter.wait()
    assert time.slept == [0.1]


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(0)


def letter(order_id: str | None, sent_ago: timedelta = timedelta(0)) -> DeadLetter:
    body = f'{{"order_id": "{order_id}"}}' if order_id else "junk"
    return DeadLetter("m-1", "handle", body, NOW - sent_ago, None, 6)


def order(error: str | None) -> Order:
    return Order.model_construct(delivery_error=error)


def test_selection_criteria_must_all_hold():
    old_tag = letter("ord_a", timedelta(hours=3))
    assert Selection(orders=("ord_a", "ord_b")).matches(old_tag, None, NOW)
    assert not Selection(orders=("ord_b",)).matches(old_tag, None, NOW)
    assert Selection(older_than=timedelta(hours=2)).matches(old_tag, None, NOW)
    assert not Selection(older_than=timedelta(hours=4)).matches(old_tag, None, NOW)
    assert Selection(error="invalidtag").matches(old_tag, order("InvalidTag"), NOW)
    assert not Selection(error="InvalidTag").matches(old_tag, order(None), NOW)
    assert not Selection(error="InvalidTag").matches(old_tag, None, NOW)
    both = Selection(older_than=timedelta(hours=1), error="Integrity")
    assert both.matches(old_tag, order("IntegrityViolation: x"), NOW)
    assert not both.matches(old_tag, order("InvalidTag"), NOW)


def test_all_takes_everything_and_nothing_takes_nothing():
    junk = letter(None)
    assert Selection(everything=True).matches(junk, None, NOW)
    assert Selection().empty and not Selection().matches(junk, None, NOW)
    assert not Selection(orders=("ord_a",)).matches(junk, None, NOW)


def test_a_dead_letter_knows_its_order_only_for_delivery_messages():
    assert letter("ord_a").order_id == "ord_a"
    assert letter(None).order_id is None
    assert DeadLetter("m", "h", '{"order_id": 7}', NOW, None, 1).order_id is None


def test_a_stack_target_maps_its_outputs_to_the_logical_ids():
    outputs = {
        "DeliveryQueueUrl": "https://sqs/dq",
        "DeliveryDLQUrl": "https://sqs/ddlq",
        "NotifyQueueUrl": "https://sqs/nq",
        "NotifyDLQUrl": "https://sqs/ndlq",
        "OrdersTableName": "prod-OrdersTable-1",
        "OpsTableName": "prod-OpsTable-1",
        "ShopTableName": "prod-ShopTable-1",
        "ApiUrl": "https://api",
    }
    target = stack_target("prod", outputs, "eu-west-1")
    assert (
        target.queue("DeliveryDLQ") == "https://sqs/ddlq" and target.queue("NotifyQueue") == "https://sqs/nq"
    )
    assert (
        target.table("OrdersTable") == "prod-OrdersTable-1" and target.table("OpsTable") == "prod-OpsTable-1"
    )
    assert target.endpoint is None and target.region == "eu-west-1"
    with pytest.raises(TargetError, match="stack old has no output OpsTableName"):
        stack_target("old", {k: v for k, v in outputs.items() if k != "OpsTableName"}, None)


def test_a_local_target_needs_queues_and_tables():
    info = {
        "aws_endpoint": "http://127.0.0.1:5000",
        "queues": {"DeliveryDLQ": "u"},
        "tables": {"OrdersTable": "t"},
    }
    target = local_target(info)
    assert target.endpoint == "http://127.0.0.1:5000" and target.region == "us-east-1"
    with pytest.raises(TargetError, match="has no queue NotifyDLQ"):
        target.queue("NotifyDLQ")
    with pytest.raises(TargetError, match="no queues or tables"):
        local_target({"aws_endpoint": "http://127.0.0.1:5000"})


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), console=Console(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dlq", "replay"], "choose what to replay: --all, --order ID, --older-than, --error"),
        (["dlq", "replay", "--all", "--order", "ord_a"], "do not combine it with other selectors"),
        (["dlq", "replay", "--older-than", "soon"], "not a duration: 'soon'"),
        (["dlq", "replay", "--all", "--rate", "0"], "must be more than 0"),
        (["dlq", "list", "--queue", "orders"], "invalid choice: 'orders'"),
        (["reports", "--last", "x"], "not a number"),
        (["dlq"], "required"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_anything_is_read(argv, message, tmp_path):
    code, out, err = (
        run(*argv, "--local-file", str(tmp_path / "none.json")) if argv != ["dlq"] else run(*argv)
    )
    assert code == 2 and out == ""
    assert message in err and len(err.splitlines()) == 1


def test_no_target_is_a_usage_error(tmp_path):
    code, out, err = run("dlq", "list", "--local-file", str(tmp_path / "local.json"))
    assert code == 2 and out == ""
    assert err == (
        f"miaofa-ops: no target: {tmp_path / 'local.json'} does not exist (start `make run`, or pass --stack NAME)\n"
    )


def test_an_old_local_file_says_what_to_do(tmp_path):
    old = tmp_path / "local.json"
    old.write_text('{"url": "http://127.0.0.1:3000", "aws_endpoint": "http://127.0.0.1:5000"}')
    code, _, err = run("reports", "--local-file", str(old))
    assert code == 2 and "has no queues or tables" in err and "restart `make run`" in err


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45, "45s"), (192, "3m12s"), (7500, "2h05m"), (97200, "1d03h"), (-3, "0s")],
)
def test_ages(seconds, shown):
    assert age(seconds) == shown


def test_a_report_prints_its_figures_indented():
    report = {
        "at": "2030-01-01T00:00:00+00:00",
        "expired": 2,
        "stock": {"checked": 3, "broken": []},
        "ids": ["a"],
    }
    assert report_lines(report) == [
        "reconcile report at 2030-01-01T00:00:00+00:00",
        "  expired: 2",
        "  stock:",
        "    checked: 3",
        "    broken: []",
        "  ids:",
        "    - a",
    ]
