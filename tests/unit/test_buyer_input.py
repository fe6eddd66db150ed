"""A product's declared fields and a buyer's values for them (shared/buyer_input.py)."""

import pytest
from pydantic import ValidationError

from shared.buyer_input import InputField, check_fields, check_input
from shared.errors import Invalid

LABEL = {"zh-CN": "账号", "en": "Account"}


def field(**given) -> InputField:
    return InputField.model_validate({"name": "uid", "label": LABEL, **given})


@pytest.mark.parametrize(
    ("declared", "value", "stored"),
    [
        ({"type": "number"}, " 10086 ", "10086"),
        ({"type": "number"}, 10086, "10086"),
        ({"type": "phone"}, "+86 138-0013-8000", "+86 138-0013-8000"),
        ({"type": "email"}, "Player@Example.com", "Player@example.com"),
        ({"type": "select", "options": ["Asia", "Europe"]}, "Europe", "Europe"),
        ({"pattern": "[A-Z]{2}[0-9]{4}"}, "AB1234", "AB1234"),
    ],
)
def test_a_value_of_the_declared_form_is_kept_normalised(declared, value, stored):
    assert check_input((field(**declared),), {"uid": value}) == {"uid": stored}


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        ({"type": "number"}, "10o86"),
        ({"type": "number"}, True),
        ({"type": "phone"}, "call me"),
        ({"type": "email"}, "not-an-address"),
        ({"type": "select", "options": ["Asia"]}, "Mars"),
        ({"pattern": "[A-Z]{2}[0-9]{4}"}, "AB12345"),  # the whole value must match
        ({"max_length": 5}, "123456"),
        ({}, "two\nlines"),
        ({}, ["a", "list"]),
    ],
)
def test_a_value_of_another_form_is_refused_naming_the_field_not_the_value(declared, value):
    with pytest.raises(Invalid) as refused:
        check_input((field(**declared),), {"uid": value})
    assert refused.value.code == "invalid_buyer_input"
    assert refused.value.message.startswith("buyer_input.uid: ")
    assert str(value) not in refused.value.message


def test_required_optional_and_unknown_fields():
    fields = (field(), field(name="note", required=False))
    assert check_input(fields, {"uid": "1"}) == {"uid": "1"}
    assert check_input(fields, {"uid": "1", "note": "  "}) == {"uid": "1"}
    for values, named in (({}, "uid"), ({"uid": " "}, "uid"), ({"uid": "1", "level": "9"}, "level")):
        with pytest.raises(Invalid, match=f"buyer_input.{named}:"):
            check_input(fields, values)
    assert check_input((), None) == {}


def test_a_catastrophic_pattern_refuses_the_value_instead_of_stalling():
    greedy = field(pattern="(x+x+)+y", max_length=500)
    with pytest.raises(Invalid, match="not in the form"):
        check_input((greedy,), {"uid": "x" * 500})


@pytest.mark.parametrize(
    "declared",
    [
        {"label": {"en": "Account"}},  # both languages
        {"name": "UID"},  # a lower-case key
        {"type": "select"},  # a select needs options
        {"options": ["a"]},  # and only a select has them
        {"pattern": "(unclosed"},
    ],
)
def test_a_field_declared_wrong_is_refused(declared):
    with pytest.raises(ValidationError):
        field(**declared)


def test_a_products_fields_have_unique_names_and_are_few():
    assert check_fields((field(), field())) == "buyer_input: field names must be unique"
    assert "at most" in (check_fields(tuple(field(name=f"f{n}") for n in range(9))) or "")
    assert check_fields((field(),)) is None
