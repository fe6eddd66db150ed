"""The shop settings' rules and which bodies a JSON route takes, without the embedded AWS."""

import pytest
from pydantic import ValidationError

from shared.http import is_json
from shared.shops import ShopSettings, check_name


@pytest.mark.parametrize(
    ("content_type", "taken"),
    [
        (None, True),  # no Content-Type: read as JSON, as before
        ("", True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),  # media types are case-insensitive
        ("application/x-www-form-urlencoded", False),  # curl -d
        ("multipart/form-data", False),
        ("multipart/form-data; boundary=x", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("application/merge-patch+json", False),
    ],
)
def test_a_json_route_takes_json_or_an_unnamed_body_only(content_type, taken):
    assert is_json(content_type) is taken


def test_blank_optional_texts_clear_and_texts_are_stripped():
    settings = ShopSettings(
        name="  Neko  ", logo_url=" ", contact="", announcement="a\r\nb", support_email=""
    )
    assert settings.model_dump() == {
        "name": "Neko",
        "logo_url": None,
        "contact": None,
        "announcement": "a\nb",
        "support_email": None,
        "default_language": "zh-CN",
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://a.example/l.png",
        "//a.example/l.png",
        "data:image/png;base64,AAAA",
        "https:///l.png",
        "https://u@a.example/",
    ],
)
def test_a_logo_is_an_https_url_with_a_host_and_no_credentials(url):
    with pytest.raises(ValidationError) as refused:
        ShopSettings(name="x", logo_url=url)
    assert refused.value.errors()[0]["loc"] == ("logo_url",)


def test_the_name_rule_is_the_ops_clis_too():
    assert check_name(" 喵喵点卡 ") == "喵喵点卡"
    for name in ("", " ", "a\tb", "x" * 101):
        with pytest.raises(ValidationError):
            check_name(name)
