"""The order page names its WebSocket URL, and its Content-Security-Policy lets it connect there and
nowhere else; a WEBSOCKET_URL that could say more than a URL never reaches the policy."""

import pytest
from pydantic import ValidationError

from functions.storefront.pages import order_page
from tests.unit.test_settings import make

ORDER_ID = "ord_" + "a" * 20


def connect_src(page) -> str:
    directives = dict(d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
    return directives["connect-src"]


def test_the_page_may_connect_to_its_websocket_origin_only():
    page = order_page(ORDER_ID, "en", "wss://abc123.execute-api.eu-west-1.amazonaws.com/live")

    assert connect_src(page) == "'self' wss://abc123.execute-api.eu-west-1.amazonaws.com"
    assert 'data-ws-url="wss://abc123.execute-api.eu-west-1.amazonaws.com/live"' in page.html


def test_without_a_websocket_url_the_page_polls_and_connects_only_to_itself():
    page = order_page(ORDER_ID, "en")

    assert connect_src(page) == "'self'"
    assert "data-ws-url" not in page.html


@pytest.mark.parametrize(
    "url",
    [
        "wss://abc.example/live; script-src 'unsafe-inline'",
        "wss://abc.example/live 'unsafe-eval'",
        "https://abc.example/live",
        "javascript:alert(1)",
        'wss://abc.example/"><script>',
        "wss://user@abc.example/live",
    ],
)
def test_a_websocket_url_that_is_more_than_a_url_is_refused(url):
    with pytest.raises(ValidationError, match="WEBSOCKET_URL"):
        make(WEBSOCKET_URL=url)


@pytest.mark.parametrize(
    "url", ["", "ws://127.0.0.1:40123/live", "wss://abc.execute-api.us-east-1.amazonaws.com/live"]
)
def test_a_plain_websocket_url_is_accepted(url):
    assert make(WEBSOCKET_URL=url).websocket_url == url
