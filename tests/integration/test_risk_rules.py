"""Risk rules through the local runtime: `GET/PUT /merchant/risk/rules` (docs/risk.md "Rules API").

A new shop reads the defaults (version 0, `defaults: true`); a PUT is validated (422
`invalid_risk_rules` naming the field, nothing written), written against the version read (409
`version_conflict` once another write came), and a PUT whose answer was lost and retried is not a
false conflict. Each merchant reads and sets only its own rules. `add_blocked` (learning from
disputes) is one audited change, retried over a concurrent one."""

import threading

import boto3
import pytest

from shared.adapters import merchants as merchant_store
from shared.adapters import risk_rules
from shared.risk import default_rules
from shared.settings import settings
from tests.faults_aws import lost_answer, on_table

RULES = {
    "review_at": 50,
    "block_at": 80,
    "rules": [
        {"id": "vip-payers", "type": "list", "kind": "payer", "action": "allow", "values": ["alipay:2088"]},
        {"id": "payer-burst", "type": "velocity", "kind": "payer", "window": 10, "max_orders": 3,
         "action": "review", "score": 40},
        {"type": "disposable_email", "action": "review", "score": 30},
    ],
}  # fmt: skip


@pytest.fixture
def merchant(runtime) -> tuple[str, str]:
    return merchant_store().create_merchant("Risk rules test")


def get_rules(shop, key: str, **params: str) -> dict:
    response = shop.merchant("GET", "/merchant/risk/rules", key=key, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def put_rules(shop, key: str, document: dict):
    return shop.merchant("PUT", "/merchant/risk/rules", key=key, json=document)


def stored(merchant_id: str) -> dict | None:
    return (
        boto3.client("dynamodb")
        .get_item(
            TableName=settings().shop_table, Key={"pk": {"S": f"risk#{merchant_id}"}}, ConsistentRead=True
        )
        .get("Item")
    )


def test_a_new_shop_reads_the_defaults_at_version_0_in_the_currency_asked(shop, merchant):
    _, key = merchant
    rules = get_rules(shop, key)
    assert rules == {**default_rules("CNY").model_dump(mode="json"), "defaults": True}
    assert rules["version"] == 0
    in_usd = get_rules(shop, key, currency="USD")
    assert in_usd["rules"][0]["above"] == {"amount": 7_000, "currency": "USD"}
    bad = shop.merchant("GET", "/merchant/risk/rules", key=key, params={"currency": "usd"})
    assert bad.status_code == 422, bad.text


def test_a_put_stores_the_document_at_the_next_version_and_get_reads_it_back(shop, merchant):
    merchant_id, key = merchant
    response = put_rules(shop, key, {**RULES, "version": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["defaults"] is False
    assert [rule["id"] for rule in body["rules"]][:2] == ["vip-payers", "payer-burst"]
    assert body["rules"][2]["id"].startswith("disposable_email-")  # made from its content, then kept
    assert get_rules(shop, key) == body
    assert int(stored(merchant_id)["version"]["N"]) == 1
    # GET's answer sent back as it is (with `defaults`) is a valid PUT: the next version.
    again = put_rules(shop, key, body)
    assert again.status_code == 200 and again.json()["version"] == 2, again.text
    assert again.json()["rules"] == body["rules"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"rules": [{"type": "velocity", "kind": "payer", "window": 5, "max_orders": 1, "action": "review"}]},
         "rules[0].window"),
        ({"rules": [{"type": "list", "kind": "client", "values": ["not-an-address"], "action": "block"}]},
         "rules[0].values"),
        ({"review_at": 95, "block_at": 90}, "review_at must not be above block_at"),
        ({"rules": [{"type": "amount", "action": "review"}]}, "rules[0].above"),
        ({"surprise": True}, "surprise"),
        ({"version": -1}, "version"),
    ],
)  # fmt: skip
def test_a_document_that_breaks_a_rule_is_422_naming_the_field_and_nothing_is_written(
    shop, merchant, document, field
):
    merchant_id, key = merchant
    response = put_rules(shop, key, document)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_risk_rules" and field in error["message"]
    assert "not-an-address" not in error["message"]  # a list's value is never repeated
    assert stored(merchant_id) is None


def test_a_body_that_is_not_a_json_object_is_refused(shop, merchant):
    merchant_id, key = merchant
    as_list = shop.merchant("PUT", "/merchant/risk/rules", key=key, json=[1, 2])
    assert as_list.status_code == 422 and as_list.json()["error"]["code"] == "invalid_risk_rules"
    text = shop.merchant(
        "PUT", "/merchant/risk/rules", key=key, data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    broken = shop.merchant(
        "PUT",
        "/merchant/risk/rules",
        key=key,
        data=b'{"rules": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    assert stored(merchant_id) is None


def test_a_put_of_a_version_another_write_replaced_is_409_and_writes_nothing(shop, merchant):
    merchant_id, key = merchant
    assert put_rules(shop, key, {**RULES, "version": 0}).json()["version"] == 1  # someone else's change
    before = stored(merchant_id)

    response = put_rules(shop, key, {"rules": [], "version": 0})  # made against the defaults read

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "version_conflict" and "now version 1" in error["message"]
    assert stored(merchant_id) == before
    assert put_rules(shop, key, {"rules": [], "version": 1}).json()["version"] == 2


def test_two_puts_of_one_version_at_once_are_one_200_and_one_409(shop, merchant):
    _, key = merchant
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def put(review_at: int) -> None:
        barrier.wait()
        answers.append(put_rules(shop, key, {"review_at": review_at, "version": 0}).status_code)

    threads = [threading.Thread(target=put, args=(n,)) for n in (40, 45)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409]
    assert get_rules(shop, key)["version"] == 1


def test_a_put_whose_answer_is_lost_is_not_a_conflict_and_moves_the_version_once(shop, merchant):
    """The SDK sends the conditional UpdateItem again after its first answer is lost: the retry finds
    its own document at the version it made, which is done, not a conflict."""
    merchant_id, key = merchant
    with lost_answer("UpdateItem", on_table(settings().shop_table, pk=f"risk#{merchant_id}")) as fault:
        response = put_rules(shop, key, {**RULES, "version": 0})
    assert fault.hits == 1 and fault.seen == 2
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    # The client's own retry of the same PUT (it never got the answer): the same 200.
    retried = put_rules(shop, key, {**RULES, "version": 0})
    assert retried.status_code == 200 and retried.json() == response.json()
    assert get_rules(shop, key)["version"] == 1


def test_each_merchant_reads_and_sets_only_its_own_rules(shop, merchant):
    _, key = merchant
    _, other_key = merchant_store().create_merchant("Another shop")
    assert put_rules(shop, other_key, {**RULES, "version": 0}).status_code == 200
    assert get_rules(shop, key)["defaults"] is True
    assert get_rules(shop, other_key)["review_at"] == 50
    assert shop.merchant("GET", "/merchant/risk/rules", key="mk_test_" + "x" * 32).status_code == 403
    assert shop.http.get(f"{shop.url}/merchant/risk/rules").status_code == 401


def test_the_store_reads_defaults_until_set_and_caches_for_deciding(merchant):
    merchant_id, _ = merchant
    store = risk_rules()
    assert store.rules(merchant_id, "CNY") == default_rules("CNY")
    assert store.rules(merchant_id, "SGD").version == 0  # no figure for it: the defaults still apply
    assert store.recent_rules(merchant_id, "CNY").version == 0
    parsed = store.put_rules(merchant_id, default_rules("CNY").model_copy(update={"review_at": 55}), 0)
    assert store.rules(merchant_id, "CNY") == parsed and parsed.version == 1


def test_learned_blocks_are_one_audited_change_retried_over_a_concurrent_one(merchant, caplog):
    merchant_id, _ = merchant
    store = risk_rules()
    store.put_rules(merchant_id, default_rules("CNY"), 0)
    with caplog.at_level("WARNING"):
        learned = store.add_blocked(merchant_id, {"payer": "alipay:2088999", "email": "Thief@Example.com"})
    assert learned.version == 2
    lists = {rule.id: rule for rule in learned.rules if rule.type == "list"}
    assert lists["learned-payer"].values == ("alipay:2088999",)
    assert lists["learned-email"].values == ("thief@example.com",)
    audit = [r for r in caplog.records if getattr(r, "audit", None) == "risk_blocked_added"]
    assert len(audit) == 1 and audit[0].kinds == ["email", "payer"]
    assert "2088999" not in caplog.text and "thief" not in caplog.text.lower()

    # Several learned at once (disputes arriving together): each read-modify-write is retried over
    # the others, and every value ends up listed.
    threads = [
        threading.Thread(target=store.add_blocked, args=(merchant_id, {"device": f"device-{n}"}))
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.rules(merchant_id, "CNY")
    devices = next(rule for rule in final.rules if rule.id == "learned-device")
    assert sorted(devices.values) == [f"device-{n}" for n in range(4)]
    assert final.version == 6
