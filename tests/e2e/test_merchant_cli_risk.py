"""`miaofa-merchant risk` and `reviews` against the local runtime: the rules shown (the defaults until
set), set from a file with the version it was read at (a change made in between is refused, not
undone; `--force` writes over it), a bad document refused naming its field; the review queue listed,
an order approved (its code delivered) and one rejected (refunded), each safe to run again."""

import io
import json
import re

import pytest

from infra.merchant import cli
from shared.adapters import merchants as merchant_store
from tests.support import in_review, new_codes, stored_order

pytestmark = pytest.mark.e2e


def run(shop, *argv, key=None):
    """(exit code, stdout, stderr) of one command, as a merchant would run it."""
    console = cli.Console(out=io.StringIO(), err=io.StringIO(), environ={}, tty=False, sleep=lambda _: None)
    code = cli.main([*argv, "--url", shop.url, "--key", key or shop.merchant_key], console=console)
    return code, console.out.getvalue(), console.err.getvalue()


@pytest.fixture
def key(runtime) -> str:
    return merchant_store().create_merchant("CLI risk test")[1]


def test_risk_show_prints_the_defaults_and_set_writes_a_file_at_the_version_it_was_read(shop, key, tmp_path):
    code, out, _ = run(shop, "risk", "show", key=key)
    assert code == 0
    assert "version    0  (the defaults: none set yet)" in out
    assert "first-order-large" in out and "8 rules" in out

    code, out, _ = run(shop, "risk", "show", "--json", key=key)
    document = json.loads(out)
    assert code == 0 and document["defaults"] is True and document["version"] == 0
    document["review_at"] = 55
    document["rules"] = [r for r in document["rules"] if r["id"] != "quantity-bulk"]
    file = tmp_path / "rules.json"
    file.write_text(json.dumps(document))

    code, out, err = run(shop, "risk", "set", str(file), "--json", key=key)
    assert code == 0, err
    stored = json.loads(out)
    assert (stored["version"], stored["review_at"], stored["defaults"]) == (1, 55, False)
    assert "quantity-bulk" not in out

    code, _, err = run(shop, "risk", "set", str(file), key=key)  # the same file again: sent again
    assert code == 0, err  # a retry of the write it already made is not a conflict

    # Someone changes the rules after this file was read (at version 0 it says): refused, not undone.
    theirs = {**stored, "block_at": 95}
    assert shop.merchant("PUT", "/merchant/risk/rules", key=key, json=theirs).status_code == 200
    document["review_at"] = 45
    file.write_text(json.dumps(document))
    code, out, err = run(shop, "risk", "set", str(file), key=key)
    assert code == 1 and out == ""
    assert "someone else changed them after version 0 was read" in err and "--force" in err
    assert shop.merchant("GET", "/merchant/risk/rules", key=key).json()["block_at"] == 95

    code, out, err = run(shop, "risk", "set", str(file), "--force", "--json", key=key)
    assert code == 0, err
    assert (json.loads(out)["review_at"], json.loads(out)["version"]) == (45, 3)


def test_risk_set_refuses_a_bad_document_naming_its_field_and_a_file_that_is_not_json(shop, key, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"type": "velocity", "kind": "payer", "window": 7,
                                          "max_orders": 2, "action": "review"}]}))  # fmt: skip
    code, _, err = run(shop, "risk", "set", str(bad), key=key)
    assert code == 1 and "invalid_risk_rules" in err and "rules[0].window" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{rules: ")
    code, _, err = run(shop, "risk", "set", str(broken), key=key)
    assert code == 2 and "is not JSON" in err
    assert shop.merchant("GET", "/merchant/risk/rules", key=key).json()["defaults"] is True


def test_reviews_are_listed_approved_and_rejected_each_safe_to_run_again(shop, key):
    product_id = shop.new_product(["CLI-REVIEWED-1", *new_codes(1, "CLI-REVIEWED")], key=key)
    approved, rejected = shop.buy(product_id), shop.buy(product_id)
    in_review(shop, approved)
    in_review(shop, rejected)

    code, out, _ = run(shop, "reviews", "list", key=key)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(approved["order_id"]) and lines[1].startswith(rejected["order_id"])
    assert re.search(r"risk \(first-order-large\), policy in 14(39|40) min", lines[0]), lines[0]
    assert lines[-1] == "2 orders in review"

    for _ in range(2):  # the second run answers as the first did
        code, out, err = run(shop, "reviews", "approve", approved["order_id"], "--json", key=key)
        assert code == 0, err
        assert json.loads(out)["decision"] == "approved"
    delivered = shop.wait_for(approved, "DELIVERED")
    assert len(delivered["items"]) == 1

    for _ in range(2):
        code, out, err = run(
            shop, "reviews", "reject", rejected["order_id"], "--reason", "chargeback risk", key=key
        )
        assert code == 0, err
        assert (
            out.startswith(f"{rejected['order_id']}  rejected  REFUND")
            and f"refund rf_{rejected['order_id']}" in out
        )
    payment = stored_order(rejected["order_id"]).payment
    assert payment is not None and len(shop.runtime.sandbox.refunds_for(payment.payment_id)) == 1

    code, out, _ = run(shop, "reviews", "list", key=key)
    assert (code, out.strip()) == (0, "0 orders in review")
    code, _, err = run(shop, "reviews", "approve", rejected["order_id"], key=key)
    assert code == 1 and "not_in_review" in err
    code, _, err = run(shop, "reviews", "approve", "ord_" + "0" * 20, key=key)
    assert code == 1 and "order_not_found" in err


def test_a_products_review_deadline_and_policy_are_changed_and_shown(shop, key):
    product_id = shop.new_product(new_codes(1), key=key)
    code, out, err = run(
        shop, "products", "change", product_id, "--review-deadline-minutes", "90",
        "--when-review-expires", "deliver", key=key,
    )  # fmt: skip
    assert code == 0, err
    assert "review_deadline_minutes  90" in out and "when_review_expires      deliver" in out
    code, _, err = run(shop, "products", "change", product_id, "--when-review-expires", "hold", key=key)
    assert code == 2 and "invalid choice" in err
