"""A merchant's risk rules as data (shared/risk/rules.py): the JSON document validates with errors
naming the field, stays small, keeps its ids, and learns blocks from disputes."""

import json
import re
from pathlib import Path

import pytest

from shared.errors import Invalid
from shared.risk.rules import (
    MAX_DOCUMENT_BYTES,
    MAX_LEARNED,
    MAX_RULES,
    ListRule,
    RiskRules,
    VelocityRule,
    parse_rules,
    stored_rules,
    with_blocked,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "risk.md"


def velocity(**changes) -> dict:
    return {"type": "velocity", "kind": "payer", "window": 10, "max_orders": 5, "action": "review", **changes}


def block_list(kind: str, *values: str, **changes) -> dict:
    return {"type": "list", "kind": kind, "action": "block", "values": list(values), **changes}


def refusal(document) -> Invalid:
    with pytest.raises(Invalid) as refused:
        parse_rules(document)
    assert refused.value.status == 422 and refused.value.code == "invalid_risk_rules"
    return refused.value


def test_the_example_in_docs_risk_md_is_a_valid_document_and_round_trips_as_json():
    example = re.search(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert example, "docs/risk.md shows a rules document"
    rules = parse_rules(json.loads(example[1]))
    assert rules.rules and {rule.type for rule in rules.rules} >= {"list", "velocity", "first_order"}
    again = parse_rules(json.loads(rules.model_dump_json()))
    assert again == rules
    assert stored_rules(rules.model_dump_json()) == rules


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rules": [velocity(window=15)]}, "rules[0].window: Input should be 10, 60 or 1440"),
        (
            {"rules": [velocity(max_orders=None)]},
            "rules[0]: max_orders, max_amount: set one of them, or both",
        ),
        (
            {"rules": [velocity(max_orders=0)]},
            "rules[0].max_orders: Input should be greater than or equal to 1",
        ),
        ({"rules": [velocity(max_orders="5")]}, "rules[0].max_orders: Input should be a valid integer"),
        ({"rules": [velocity(score=101)]}, "rules[0].score: Input should be less than or equal to 100"),
        (
            {"rules": [velocity(action="deny")]},
            "rules[0].action: Input should be 'allow', 'review' or 'block'",
        ),
        ({"rules": [velocity(kind="card_country")]}, "rules[0].kind: Input should be 'email', 'client'"),
        ({"rules": [velocity(colour="red")]}, "rules[0].colour: Extra inputs are not permitted"),
        ({"rules": [velocity(id="Has Spaces")]}, "rules[0].id: String should match pattern"),
        ({"rules": [velocity(max_amount={"amount": 1.5, "currency": "CNY"})]}, "rules[0].max_amount.amount"),
        (
            {"rules": [velocity(max_amount={"amount": 100, "currency": "cny"})]},
            "rules[0].max_amount.currency",
        ),
        ({"rules": [{"type": "speed", "action": "block"}]}, "rules[0]: Input tag 'speed' found using 'type'"),
        ({"rules": [{"type": "amount", "action": "review"}]}, "rules[0].above: Field required"),
        (
            {"rules": [block_list("email", "a@example.org", "not an address")]},
            "rules[0].values: entry 1: not an e-mail",
        ),
        (
            {"rules": [block_list("client", "10.0.0.300")]},
            "rules[0].values: entry 0: not an IP address or network",
        ),
        ({"rules": [block_list("payer", "2088102177846875")]}, "rules[0].values: entry 0: not a payer"),
        (
            {"rules": [block_list("card_country", "China")]},
            "rules[0].values: entry 0: not a two-letter country",
        ),
        ({"review_at": 95, "block_at": 90}, "review_at must not be above block_at"),
        ({"review_at": 0}, "review_at: Input should be greater than or equal to 1"),
        ({"version": -1}, "version: Input should be greater than or equal to 0"),
        (
            {"rules": [velocity(id="twice"), velocity(id="twice", window=60)]},
            "rules[1].id: another rule has the id",
        ),
        ({"rules": [velocity()] * 2}, "rules[1].id: another rule has the id"),  # identical rules, no ids
        ({"rules": [velocity(id=f"r{i}") for i in range(MAX_RULES + 1)]}, "rules: at most 50 rules, not 51"),
        ({"rulez": []}, "rulez: Extra inputs are not permitted"),
        ([], "Input should be a valid dictionary"),
    ],
)
def test_a_wrong_document_is_refused_naming_the_field(document, message):
    assert refusal(document).message.startswith(message), refusal(document).message


def test_an_error_never_repeats_a_lists_value():
    message = refusal({"rules": [block_list("email", "victim@example.org", "victim at example.org")]}).message
    assert "victim" not in message


def test_a_rules_document_stays_small_enough_for_one_read():
    addresses = [f"buyer.number.{i:04d}@a-fairly-long-domain-name.example" for i in range(1000)]
    message = refusal({"rules": [block_list("email", *addresses)]}).message
    assert re.match(rf"the document is \d+ bytes as JSON; at most {MAX_DOCUMENT_BYTES}", message)
    too_many = [block_list("client", *(f"10.{n}.{i}.1" for i in range(250)), id=f"l{n}") for n in range(9)]
    assert refusal({"rules": too_many}).message == "rules: 2250 list entries in all; at most 2000"
    one_list = [block_list("client", *(f"10.0.{i // 256}.{i % 256}" for i in range(1001)))]
    assert refusal({"rules": one_list}).message == "rules[0].values: at most 1000 entries, not 1001"


def test_an_id_is_made_from_the_rules_content_when_missing_and_kept_once_written():
    first = parse_rules({"rules": [velocity()]}).rules[0]
    assert re.fullmatch(r"velocity-[0-9a-f]{8}", first.id)
    assert parse_rules({"rules": [velocity()]}).rules[0].id == first.id  # a retried PUT: the same id
    assert parse_rules({"rules": [velocity(max_orders=6)]}).rules[0].id != first.id
    written = parse_rules(json.loads(parse_rules({"rules": [velocity()]}).model_dump_json()))
    edited = json.loads(written.model_dump_json())
    edited["rules"][0]["max_orders"] = 9  # the merchant edits the rule: its id stays
    assert parse_rules(edited).rules[0].id == first.id
    assert parse_rules({"rules": [velocity(id="payer-burst")]}).rules[0].id == "payer-burst"


def test_list_values_are_normalised_and_deduplicated():
    rules = parse_rules(
        {
            "rules": [
                block_list("email", " Bad@Example.ORG", "bad@example.org", id="e"),
                block_list("client", "2001:db8::1", "2001:db8::2", "198.51.100.9/24", id="c"),
                block_list("card_country", "us", id="cc"),
            ]
        }
    )
    assert [rule.values for rule in rules.rules if isinstance(rule, ListRule)] == [
        ("bad@example.org",),
        ("2001:db8::/64", "198.51.100.0/24"),
        ("US",),
    ]


def test_lists_match_subdomains_and_networks():
    rules = parse_rules(
        {
            "rules": [
                block_list("email_domain", "example.net", id="d"),
                block_list(
                    "client", "198.51.100.0/24", "2001:db8::/48", "203.0.113.5", "2001:db9::/64", id="c"
                ),
            ]
        }
    )
    domains, clients = (rules.listed(rule) for rule in rules.rules if isinstance(rule, ListRule))
    assert "example.net" in domains and "mx.eu.example.net" in domains
    assert "example.org" not in domains and "badexample.net" not in domains
    for inside in ("198.51.100.200", "2001:db8:0:ffff::/64", "203.0.113.5", "2001:db9::/64"):
        assert inside in clients
    for outside in ("198.51.101.1", "2001:db8:1::/64", "203.0.113.6", "2001:db9:0:1::/64", "not-an-address"):
        assert outside not in clients


def test_a_stored_document_is_read_back_without_normalising_it_again():
    written = parse_rules({"rules": [block_list("email", "Bad@Example.org", id="e")], "version": 7})
    again = stored_rules(written.model_dump_json())
    assert again == written and again.version == 7
    assert again.rules[0].values == ("bad@example.org",)  # type: ignore[union-attr]


def test_a_dispute_puts_its_values_on_the_learned_block_lists_and_off_the_allow_lists():
    rules = parse_rules(
        {
            "version": 4,
            "rules": [
                {
                    "id": "vip",
                    "type": "list",
                    "kind": "payer",
                    "action": "allow",
                    "values": ["alipay:1", "alipay:2"],
                },
                velocity(id="payer-burst"),
            ],
        }
    )
    learned = with_blocked(rules, {"payer": "alipay:1", "email": "Thief@Example.org", "device": None})
    assert learned.version == 4  # the store writes it as version 5, conditional on 4
    by_id = {rule.id: rule for rule in learned.rules}
    assert by_id["vip"].values == ("alipay:2",)  # type: ignore[union-attr]
    assert by_id["learned-payer"].values == ("alipay:1",)  # type: ignore[union-attr]
    assert by_id["learned-email"].values == ("thief@example.org",)  # type: ignore[union-attr]
    assert by_id["learned-payer"].action == "block" and "learned-device" not in by_id
    assert isinstance(by_id["payer-burst"], VelocityRule)
    again = with_blocked(learned, {"payer": "alipay:9"})
    assert again.rules[-2].values == ("alipay:1", "alipay:9")  # type: ignore[union-attr]
    assert with_blocked(again, {"payer": "alipay:1"}).rules[-2].values == ("alipay:9", "alipay:1")  # type: ignore[union-attr]


def test_a_full_learned_list_lets_its_oldest_entries_go():
    rules = RiskRules()
    for n in range(MAX_LEARNED + 3):
        rules = with_blocked(rules, {"payer": f"stripe:fp{n:04d}"})
    values = rules.rules[0].values  # type: ignore[union-attr]
    assert (
        len(values) == MAX_LEARNED
        and values[0] == "stripe:fp0003"
        and values[-1] == f"stripe:fp{MAX_LEARNED + 2:04d}"
    )
    long_values = [f"stripe:{'f' * 150}{n:04d}" for n in range(400)]
    big = parse_rules({"rules": [block_list("payer", *long_values[:200], id="learned-payer")]})
    for value in long_values[200:]:
        big = with_blocked(big, {"payer": value})  # the document, not the list, is full first
    assert len(big.model_dump_json()) <= MAX_DOCUMENT_BYTES
    assert big.rules[0].values[-1] == long_values[-1]  # type: ignore[union-attr]


def test_the_learned_ids_are_kept_for_the_learned_block_lists():
    # A merchant's own rule under a learned id would leave a dispute nowhere to write: refused at PUT.
    for rule in (
        block_list("payer", "alipay:1", id="learned-payer", action="review"),
        block_list("email", "a@example.com", id="learned-payer"),
        velocity(id="learned-payer"),
    ):
        with pytest.raises(Invalid, match="kept for the block lists disputes"):
            parse_rules({"rules": [rule]})
    kept = parse_rules({"rules": [block_list("payer", "alipay:1", id="learned-payer")]})
    assert with_blocked(kept, {"payer": "alipay:2"}).rules[0].values == ("alipay:1", "alipay:2")  # type: ignore[union-attr]
