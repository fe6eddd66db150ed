"""The top-up client's rules that need no upstream (shared/upstream.py): callbacks are believed only
signed, fresh and well-formed; the config's bounds; nothing personal in a repr; the SSRF rules of a
merchant's webhook apply to its upstream, before anything is sent."""

import io
import json
import re
import time
from pathlib import Path

import pytest
import urllib3
from pydantic import ValidationError

from infra.local import upstream as fake_upstream
from shared import upstream as client
from shared.errors import BadInput, Invalid, InvalidSignature
from shared.outbound import PinnedPools
from shared.providers.signatures import sandbox_signature
from shared.upstream import OutcomeUnknown, TopupRequest, Upstream, UpstreamAnswer
from tests.support import event

SECRET = "upsec_unit_0123456789abcdef"
NOW = 1_760_000_000


def callback(**overrides) -> bytes:
    return json.dumps(event("upstream_callback_succeeded", **overrides)).encode()


def signed_headers(body: bytes, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    return {"upstream-signature": sandbox_signature(secret, body, at)}


def topup(**overrides) -> TopupRequest:
    return TopupRequest.model_validate(
        {
            "idempotency_key": "ord_0123456789abcdef0123.1",
            "order_id": "ord_0123456789abcdef0123",
            "sku": "sku-gold",
            "quantity": 1,
            "fields": {"phone": "13800138000"},
            "callback_url": "https://shop.example/webhooks/upstream/mer_1",
            **overrides,
        }
    )


# ---------- callbacks ----------


def test_a_signed_callback_is_the_upstreams_answer():
    body = callback()
    answer = client.verify_callback(SECRET, signed_headers(body), body, NOW + 10)
    assert (answer.idempotency_key, answer.status) == ("ord_0123456789abcdef0123.1", "succeeded")
    assert answer.receipt == "2 x sku-gold credited, ref UP4F0C2D8A"


def test_the_header_name_is_read_in_any_case():
    body = callback()
    headers = {"Upstream-Signature": signed_headers(body)["upstream-signature"]}
    assert client.verify_callback(SECRET, headers, body, NOW).status == "succeeded"


@pytest.mark.parametrize(
    ("headers", "now"),
    [
        ("wrong secret", NOW),
        ("none", NOW),
        ("fine", NOW + client.TOLERANCE_SECONDS + 1),  # replayed later
        ("fine", NOW - client.TOLERANCE_SECONDS - 1),  # from a clock far ahead
        ("other body", NOW),
    ],
)
def test_a_forged_replayed_or_altered_callback_is_refused(headers, now):
    body = callback()
    given = {
        "wrong secret": signed_headers(body, secret="upsec_another_merchant_0123"),
        "none": {},
        "fine": signed_headers(body),
        "other body": signed_headers(callback(receipt="something else")),
    }[headers]
    with pytest.raises(InvalidSignature):
        client.verify_callback(SECRET, given, body, now)


def test_an_empty_secret_refuses_every_callback():
    body = callback()
    with pytest.raises(InvalidSignature):
        client.verify_callback("", signed_headers(body, secret=""), body, NOW)


@pytest.mark.parametrize(
    "body", [b"not json", callback(status="unknown"), callback(status="credited"), b'{"status":"succeeded"}']
)
def test_a_signed_body_that_is_no_callback_is_bad_input(body):
    with pytest.raises(BadInput):
        client.verify_callback(SECRET, signed_headers(body), body, NOW)


def test_a_long_receipt_or_message_is_cut_not_refused():
    answer = UpstreamAnswer.model_validate(
        {"idempotency_key": "k", "status": "succeeded", "receipt": "r" * 900, "message": "m" * 900}
    )
    assert (len(answer.receipt or ""), len(answer.message or "")) == (client.MAX_TEXT, client.MAX_TEXT)


# ---------- the config and the request ----------


def test_timeouts_have_defaults_and_bounds():
    upstream = Upstream(base_url="https://up.example/api/", secret=SECRET)
    assert (upstream.base_url, upstream.connect_timeout, upstream.read_timeout) == (
        "https://up.example/api",
        2.0,
        5.0,
    )
    assert upstream.longest_send_seconds() == 7.0
    for bad in ({"read_timeout": 0}, {"read_timeout": 60}, {"connect_timeout": 30}, {"secret": "short"}):
        with pytest.raises(ValidationError):
            Upstream.model_validate({"base_url": "https://up.example", "secret": SECRET, **bad})


@pytest.mark.parametrize(
    "url", ["ftp://up.example", "https://up.example/?token=1", "https://up.example/#x", "up.example"]
)
def test_a_base_url_is_http_without_query_or_fragment(url):
    with pytest.raises(ValidationError):
        Upstream(base_url=url, secret=SECRET)


def test_no_secret_field_or_receipt_in_a_repr():
    upstream = Upstream(base_url="https://up.example", secret=SECRET)
    answer = UpstreamAnswer(idempotency_key="k", status="succeeded", receipt="PIN 4711", message="uid 10086")
    shown = repr(upstream) + str(upstream) + repr(topup()) + repr(answer)
    assert SECRET not in shown and "13800138000" not in shown
    assert "4711" not in shown and "10086" not in shown


def test_the_request_body_is_the_documented_json():
    assert json.loads(topup().body()) == {
        "idempotency_key": "ord_0123456789abcdef0123.1",
        "order_id": "ord_0123456789abcdef0123",
        "sku": "sku-gold",
        "quantity": 1,
        "fields": {"phone": "13800138000"},
        "callback_url": "https://shop.example/webhooks/upstream/mer_1",
    }


@pytest.mark.parametrize("key", ["", "../admin", "a/b", "k?x=1", ".hidden", "k" * 129, "键"])
def test_an_idempotency_key_is_one_safe_path_segment(key):
    with pytest.raises(ValidationError):
        topup(idempotency_key=key)
    with pytest.raises(ValueError):
        client.status(Upstream(base_url="https://up.example", secret=SECRET), key, NOW)


def test_a_post_is_never_retried_by_urllib3():
    assert client.SEND_RETRIES.total == 0
    assert client.STATUS_RETRIES.total == 1 and not client.STATUS_RETRIES.respect_retry_after_header


# ---------- where an upstream may be ----------


def private(host: str) -> list[str]:
    return ["10.0.0.7"]


def test_an_upstream_on_an_internal_address_is_never_connected_to():
    """As a merchant webhook: refused before a connection, a permanent failure; asking is unknown."""
    http = PinnedPools(False, private, who="upstream", retries=client.SEND_RETRIES)
    upstream = Upstream(base_url="https://upstream.internal-by-dns.example", secret=SECRET)
    answer = client.send(upstream, topup(), int(time.time()), http)
    assert (answer.status, answer.retryable) == ("failed", False)
    assert "public address" in (answer.message or "")
    with pytest.raises(OutcomeUnknown):
        client.status(upstream, "ord_0123456789abcdef0123.1", int(time.time()), http)


def test_an_upstream_whose_name_does_not_resolve_is_a_retryable_failure():
    def nowhere(host: str) -> list[str]:
        raise OSError("no such name")

    http = PinnedPools(False, nowhere, who="upstream", retries=client.SEND_RETRIES)
    answer = client.send(Upstream(base_url="https://gone.example", secret=SECRET), topup(), NOW, http)
    assert (answer.status, answer.retryable) == ("failed", True)


@pytest.mark.parametrize(
    ("url", "local_mode", "taken"),
    [
        ("https://up.example/miaofa/", False, "https://up.example/miaofa"),
        ("https://10.0.0.1/miaofa", False, None),
        ("http://up.example/miaofa", False, None),
        ("http://127.0.0.1:8100/upstream", True, "http://127.0.0.1:8100/upstream"),
        ("https://up.example/miaofa?x=1", False, None),
    ],
)
def test_a_registered_base_url_follows_the_webhook_rules(url, local_mode, taken):
    def public(host: str) -> list[str]:
        return ["93.184.215.14"]

    if taken is None:
        with pytest.raises(Invalid) as refused:
            client.check_base_url(url, local_mode, public)
        assert refused.value.code == "invalid_url"
    else:
        assert client.check_base_url(url, local_mode, public) == taken


# ---------- the supplier's snippet in docs/topup.md ----------


def documented() -> dict:
    """The signing snippet of docs/topup.md, run as a supplier would paste it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "topup.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", text, re.S)
    assert snippet, "docs/topup.md has no Python snippet"
    scope: dict = {}
    exec(snippet.group(1), scope)
    return scope


class Recorded:
    """A pool that records the request and answers with `reply` (a urllib3 response)."""

    def __init__(self, reply: urllib3.HTTPResponse) -> None:
        self.reply, self.sent = reply, []

    def pool_for(self, url: str):
        return self, url

    def urlopen(self, method, target, body=None, headers=None, **kw):
        self.sent.append((method, target, body, headers))
        return self.reply


def test_the_documented_snippet_verifies_miaofas_requests_and_signs_answers_miaofa_takes():
    supplier = documented()
    now = int(time.time())
    answer = json.dumps({"idempotency_key": "ord_0123456789abcdef0123.1", "status": "succeeded"}).encode()
    reply = urllib3.HTTPResponse(
        body=io.BytesIO(answer),
        status=200,
        headers={"Upstream-Signature": supplier["sign"](SECRET, answer)},
        preload_content=False,
    )
    http = Recorded(reply)
    upstream = Upstream(base_url="https://up.example/miaofa", secret=SECRET)
    assert client.send(upstream, topup(), now, http).status == "succeeded"  # type: ignore[arg-type]
    (_, target, body, headers) = http.sent[0]
    assert target == "https://up.example/miaofa/topups"
    assert supplier["verify"](SECRET, headers["Miaofa-Signature"], body)
    assert not supplier["verify"](SECRET, headers["Miaofa-Signature"], body + b" ")
    status_signature = sandbox_signature(SECRET, b"/topups/ord_0123456789abcdef0123.1", now)
    assert supplier["verify"](SECRET, status_signature, b"/topups/ord_0123456789abcdef0123.1")
    signed = {"Upstream-Signature": supplier["sign"](SECRET, callback())}
    assert client.verify_callback(SECRET, signed, callback(), now).status == "succeeded"


def test_the_fakes_unscripted_hold_outlasts_any_read_timeout_a_merchant_may_set():
    longest_read = max(m.le for m in Upstream.model_fields["read_timeout"].metadata if hasattr(m, "le"))
    assert fake_upstream.DELAY_MS[fake_upstream.Behaviour.TIMEOUT_AFTER_APPLYING] > longest_read * 1000
