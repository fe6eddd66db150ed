"""A failed delivery provoked and replayed with commands alone, as docs/operations.md tells an operator
("Provoking a failed delivery on the local runtime"): `miaofa-ops local fail-deliveries --count 1`, a
purchase whose order lands in DeliveryDLQ, `miaofa-ops dlq replay`, the code delivered once. The
switch refuses a deployed stack."""

import io
import json
from dataclasses import asdict

import pytest

from infra.ops.cli import Console, main
from infra.ops.target import local_target, stack_target
from tests.support import new_codes, poll, stored_order

pytestmark = pytest.mark.e2e


def ops(runtime, *argv: str, target=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    chosen = target or local_target(asdict(runtime.info))
    code = main(list(argv), target=chosen, console=Console(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def switch_off_afterwards(runtime):
    yield
    assert ops(runtime, "local", "fail-deliveries", "--count", "0")[0] == 0


def dead_letters_of(runtime, order_id: str) -> list[dict]:
    code, out, err = ops(runtime, "dlq", "list", "--json")
    assert code == 0, err
    return [row for row in json.loads(out) if row["order_id"] == order_id]


def test_a_delivery_failed_on_purpose_lands_in_the_dlq_and_one_replay_delivers_it_once(
    runtime, shop, switch_off_afterwards
):
    codes = new_codes(1, prefix="FAIL-ON-PURPOSE")
    order = shop.buy(shop.new_product(codes))
    order_id = order["order_id"]

    code, out, err = ops(runtime, "local", "fail-deliveries", "--count", "1")
    assert code == 0, err
    assert "the next 1 order to be delivered will fail until dead-lettered" in out
    assert shop.runtime.sandbox.pay(order_id, order["total"]["amount"], "CNY")

    # Its retries used up within seconds (the switch hurries them), the deliver function dead-letters it.
    (dead,) = poll(lambda: dead_letters_of(runtime, order_id), deadline=60, every=0.2)
    assert dead["status"] == "PAID" and dead["delivery_error"].startswith("InjectedFault: deliveries failing")
    stuck = stored_order(order_id)
    assert stuck.status == "PAID" and stuck.delivery_failures >= 5
    code, out, _ = ops(runtime, "local", "fail-deliveries", "--json")
    assert code == 0 and json.loads(out) == {"remaining": 0, "failing": [order_id]}

    code, out, err = ops(runtime, "dlq", "replay", "--order", order_id)
    assert code == 0, err
    assert "replayed 1 of" in out
    delivered = shop.wait_for(order, "DELIVERED")
    assert [item["code"] for item in delivered["items"]] == codes
    assert [e["type"] for e in delivered["events"]].count("order.delivered") == 1
    assert dead_letters_of(runtime, order_id) == []
    code, out, _ = ops(runtime, "local", "fail-deliveries", "--json")
    assert json.loads(out) == {"remaining": 0, "failing": []}

    # The next order is not failed any more: the switch chose one order.
    other = shop.buy(shop.new_product(new_codes(1, prefix="FAIL-NOT")))
    assert shop.runtime.sandbox.pay(other["order_id"], other["total"]["amount"], "CNY")
    shop.wait_for(other, "DELIVERED")


def test_the_switch_refuses_a_deployed_stack_and_bad_counts(runtime, switch_off_afterwards):
    stack = stack_target(
        "miaofa-prod",
        {
            name: "x"
            for name in (
                "DeliveryQueueUrl",
                "DeliveryDLQUrl",
                "NotifyQueueUrl",
                "NotifyDLQUrl",
                "OrdersTableName",
                "OpsTableName",
                "ShopTableName",
            )
        },
        "eu-west-1",
    )
    code, out, err = ops(runtime, "local", "fail-deliveries", "--count", "1", target=stack)
    assert (code, out) == (2, "") and "works only against the local runtime" in err
    out, err = io.StringIO(), io.StringIO()
    argv = ["local", "fail-deliveries", "--count", "1", "--stack", "miaofa-prod"]
    assert main(argv, console=Console(out=out, err=err)) == 2  # refused before AWS is asked anything
    assert "works only against the local runtime" in err.getvalue()
    for bad in ("-1", "1001", "many"):
        code, _, err = ops(runtime, "local", "fail-deliveries", "--count", bad)
        assert code == 2 and "--count" in err, err
    code, out, _ = ops(runtime, "local", "fail-deliveries", "--json")
    assert json.loads(out)["remaining"] == 0  # nothing was armed by the refusals
