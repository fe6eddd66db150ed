"""Parsing a merchant's code import (text/plain, one code per line, or JSON {"codes": [...]})."""

import json

import pytest

from functions.merchant.catalog import MAX_CODE_LENGTH, MAX_CODES_PER_REQUEST, parse_codes
from shared.errors import Invalid, MalformedJson

TEXT = "text/plain"
JSON = "application/json"


def codes_by_line(body: str, content_type: str = TEXT) -> dict[int, str]:
    return {new.line: new.code for new in parse_codes(body, content_type).codes}


def rejections(body: str, content_type: str = TEXT) -> list[tuple[int, str]]:
    return [(problem.line, problem.reason) for problem in parse_codes(body, content_type).rejected]


def test_crlf_line_endings_are_one_code_per_line():
    parsed = parse_codes("AAA-1\r\nBBB-2\r\nCCC-3\r\n", TEXT)
    assert [(new.line, new.code) for new in parsed.codes] == [(1, "AAA-1"), (2, "BBB-2"), (3, "CCC-3")]
    assert parsed.rejected == [] and parsed.duplicate_lines == []


def test_blank_lines_are_rejected_with_their_one_based_line_number():
    body = "AAA-1\n\nBBB-2\n   \r\nCCC-3\n\t\n"
    assert rejections(body) == [(2, "blank line"), (4, "blank line"), (6, "blank line")]
    assert codes_by_line(body) == {1: "AAA-1", 3: "BBB-2", 5: "CCC-3"}


def test_a_code_of_the_maximum_length_is_accepted():
    assert codes_by_line("X" * MAX_CODE_LENGTH) == {1: "X" * MAX_CODE_LENGTH}


def test_a_code_one_character_over_the_maximum_is_rejected():
    assert MAX_CODE_LENGTH == 512
    body = "AAA-1\n" + "X" * 513
    assert rejections(body) == [(2, "longer than 512 characters")]
    assert codes_by_line(body) == {1: "AAA-1"}


@pytest.mark.parametrize(
    "control",
    ["\x00", "\x07", "\x1b", "\x7f", "\t", "\u200b"],
    ids=["NUL", "BEL", "ESC", "DEL", "inner TAB", "zero-width space"],
)
def test_a_code_with_a_control_character_is_rejected(control):
    body = f"AAA-1\nBB{control}B-2\nCCC-3"
    assert rejections(body) == [(2, "contains control characters")]
    assert codes_by_line(body) == {1: "AAA-1", 3: "CCC-3"}


@pytest.mark.parametrize("separator", ["\x0c", "\x0b", "\x1e", "\u2028"], ids=["FF", "VT", "RS", "LINE SEP"])
def test_a_control_character_that_python_treats_as_a_line_break_is_rejected_too(separator):
    body = f"AA{separator}A-1\nBBB-2"
    assert rejections(body) == [(1, "contains control characters")]
    assert codes_by_line(body) == {2: "BBB-2"}


def test_a_repeated_code_is_reported_at_the_line_of_the_repeat():
    parsed = parse_codes("AAA-1\nBBB-2\nAAA-1\nCCC-3\nAAA-1\n", TEXT)
    assert parsed.duplicate_lines == [3, 5]
    assert [(new.line, new.code) for new in parsed.codes] == [(1, "AAA-1"), (2, "BBB-2"), (4, "CCC-3")]


def test_surrounding_whitespace_is_stripped():
    assert codes_by_line("  AAA-1  \n\tBBB-2\t\r\n") == {1: "AAA-1", 2: "BBB-2"}


def test_codes_equal_after_stripping_are_duplicates():
    assert parse_codes("AAA-1\n  AAA-1 \n", TEXT).duplicate_lines == [2]


@pytest.mark.parametrize("content_type", [JSON, "application/json; charset=utf-8"])
def test_a_json_body_is_accepted(content_type):
    body = json.dumps({"codes": ["AAA-1", " BBB-2 ", "", "AAA-1", "兑换码🎁"]})
    parsed = parse_codes(body, content_type)
    assert [(new.line, new.code) for new in parsed.codes] == [(1, "AAA-1"), (2, "BBB-2"), (5, "兑换码🎁")]
    assert [(p.line, p.reason) for p in parsed.rejected] == [(3, "blank line")]
    assert parsed.duplicate_lines == [4]


def test_a_json_code_with_an_embedded_newline_is_rejected():
    assert rejections(json.dumps({"codes": ["AAA\nBBB"]}), JSON) == [(1, "contains control characters")]


@pytest.mark.parametrize(
    "body",
    ["{", "", "AAA-1\nBBB-2", "[]", '["AAA-1"]', "null", '"AAA-1"', '{"other": ["AAA-1"]}'],
    ids=["truncated", "empty", "plain text", "empty list", "list", "null", "string", "no codes key"],
)
def test_a_malformed_json_body_is_malformed_json(body):
    with pytest.raises(MalformedJson):
        parse_codes(body, JSON)


@pytest.mark.parametrize(
    "codes",
    [["AAA-1", 2], [None], [["AAA-1"]], [{"code": "AAA-1"}], "AAA-1", {"AAA-1": 1}],
    ids=["int item", "null item", "nested list", "object item", "string instead of list", "object"],
)
def test_json_codes_that_are_not_a_list_of_strings_are_invalid(codes):
    with pytest.raises(Invalid) as raised:
        parse_codes(json.dumps({"codes": codes}), JSON)
    assert raised.value.status == 422


def test_the_maximum_number_of_codes_is_accepted():
    body = "\n".join(f"CODE-{n}" for n in range(MAX_CODES_PER_REQUEST))
    assert len(parse_codes(body, TEXT).codes) == MAX_CODES_PER_REQUEST


@pytest.mark.parametrize("content_type", [TEXT, JSON])
def test_more_than_the_maximum_number_of_codes_is_invalid(content_type):
    codes = [f"CODE-{n}" for n in range(MAX_CODES_PER_REQUEST + 1)]
    body = json.dumps({"codes": codes}) if content_type == JSON else "\n".join(codes)
    with pytest.raises(Invalid) as raised:
        parse_codes(body, content_type)
    assert raised.value.code == "too_many_codes"
