"""Which webhook URLs the shop takes (shared/notify.py webhook_target): every address the host is
written as, in any form a resolver reads, or resolves to must be public; local mode also takes
loopback. No network: names resolve through a resolver the test passes, and the system resolver is
off (an address literal must never need it)."""

import socket
from ipaddress import IPv4Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import notify
from shared.errors import Invalid

PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:4700::1111"

# Numeric forms of internal addresses: every one is read as the resolver reads it.
NUMERIC = {
    "2852039166": "169.254.169.254",
    "0xa9fea9fe": "169.254.169.254",
    "0251.0376.0251.0376": "169.254.169.254",
    "0xa9.0xfe.0xa9.0xfe": "169.254.169.254",
    "169.254.43518": "169.254.169.254",
    "169.16689662": "169.254.169.254",
    "127.1": "127.0.0.1",
    "0x7f.1": "127.0.0.1",
    "0177.0.0.1": "127.0.0.1",
    "0x7F.0.0.1": "127.0.0.1",
    "2130706433": "127.0.0.1",
    "017700000001": "127.0.0.1",
    "0": "0.0.0.0",
    "10.1": "10.0.0.1",
    "012.0.0.1": "10.0.0.1",
}
# Refused outside local mode, and inside it too: none of them is loopback.
NOT_PUBLIC = [
    "https://2852039166/latest/meta-data/",
    "https://0xa9fea9fe/",
    "https://0251.0376.0251.0376/",
    "https://0xa9.0xfe.0xa9.0xfe/",
    "https://169.254.169.254/",
    "https://169.254.169.254./",
    "https://012.0.0.1/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",  # shared address space (carrier-grade NAT)
    "https://0.0.0.0/",
    "https://0/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://192.0.0.8/",
    "https://198.18.0.1/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[::ffff:10.0.0.1]/",
    "https://[::169.254.169.254]/",  # IPv4-compatible
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "https://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "https://[fd00::1]/",
    "https://[fd00:ec2::254]/",  # the EC2 instance metadata service over IPv6
    "https://[fe80::1]/",
    "https://[fe80::1%25eth0]/",
    "https://[fec0::1]/",
    "https://[ff02::1]/",
    "https://[::]/",
    "https://[2001:db8::1]/",
]
# Loopback in every form: refused outside local mode, taken in it.
LOOPBACK = [
    "https://127.0.0.1/",
    "https://127.1/",
    "https://0x7f.1/",
    "https://0177.0.0.1/",
    "https://2130706433/",
    "https://127.255.255.254/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
]


@pytest.fixture(autouse=True)
def no_system_resolver(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the system resolver was asked: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def resolver(answers: dict[str, list[str]]):
    """A resolver that knows `answers` (host name -> addresses) and nothing else."""

    def resolve(host: str) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


def refused(url: str, local_mode: bool, resolve=None) -> Invalid:
    with pytest.raises(Invalid) as refusal:
        if resolve is None:
            notify.check_webhook_url(url, local_mode=local_mode)
        else:
            notify.check_webhook_url(url, local_mode=local_mode, resolve=resolve)
    assert refusal.value.code == "invalid_url" and refusal.value.status == 422
    return refusal.value


@pytest.mark.parametrize(("host", "address"), NUMERIC.items())
def test_a_numeric_host_is_read_as_inet_aton_reads_it(host, address):
    assert notify.ipv4_address(host) == IPv4Address(address)


@pytest.mark.parametrize(
    "host", ["08.0.0.1", "0x.1", "1.2.3.4.5", "4294967296", "256.1.1.1", "1.16777216", "1..2", "", "a.b"]
)
def test_what_inet_aton_refuses_is_no_address(host):
    assert notify.ipv4_address(host) is None


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_the_numeric_reading_is_the_system_one(host):
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    assert notify.ipv4_address(host) == expected


@pytest.mark.parametrize("url", NOT_PUBLIC + LOOPBACK + ["https://localhost/", "https://localhost./"])
def test_outside_local_mode_no_internal_address_in_any_form_is_taken(url):
    assert "public address" in refused(url, local_mode=False).message


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_local_mode_takes_loopback_only(url):
    assert "public address" in refused(url, local_mode=True).message


@pytest.mark.parametrize(
    "url",
    LOOPBACK + ["http://127.0.0.1:8080/", "http://127.1:8080/", "http://0x7f.1/", "http://[::1]:8080/hook"],
)
def test_local_mode_takes_a_loopback_address_in_any_form(url):
    assert notify.check_webhook_url(url, local_mode=True) == url


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC_V4}/hook",
        f"https://[{PUBLIC_V6}]/hook",
        "https://134744072/",  # 8.8.8.8
        "https://[::ffff:8.8.8.8]/",
        "https://[64:ff9b::808:808]/",  # NAT64 (DNS64 in an IPv6-only subnet)
        "https://[2002:808:808::1]/",  # 6to4
    ],
)
def test_a_public_address_is_taken_in_either_mode(url):
    assert notify.check_webhook_url(url, local_mode=False) == url
    assert notify.check_webhook_url(url, local_mode=True) == url


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        [PUBLIC_V4, "169.254.169.254"],  # any one address that is not public is enough
        [PUBLIC_V6, "fd00::1"],
        ["::ffff:10.0.0.1"],
        ["100.64.0.1"],
        ["not-an-address"],
    ],
)
def test_a_name_that_resolves_to_an_internal_address_is_refused_in_either_mode(answers):
    resolve = resolver({"hooks.shop.example": answers})
    for local_mode in (False, True):
        refused("https://hooks.shop.example/hook", local_mode, resolve)


def test_a_name_that_resolves_to_public_addresses_is_taken_and_kept_with_them():
    resolve = resolver({"hooks.shop.example": [PUBLIC_V6, PUBLIC_V4, PUBLIC_V4]})
    url = "https://Hooks.Shop.Example.:8443/miaofa/in?x=1&y=2"
    assert notify.check_webhook_url(url, local_mode=False, resolve=resolve) == url
    assert notify.webhook_target(url, False, resolve) == notify.WebhookTarget(
        scheme="https",
        host="hooks.shop.example.",
        port=8443,
        request_target="/miaofa/in?x=1&y=2",
        addresses=(PUBLIC_V6, PUBLIC_V4),
    )
    assert notify.webhook_target("https://hooks.shop.example", False, resolve).request_target == "/"


def test_a_name_that_does_not_resolve_is_refused_saying_so():
    for resolve in (resolver({}), resolver({"hooks.shop.example": []})):
        refusal = refused("https://hooks.shop.example/hook", False, resolve)
        assert isinstance(refusal, notify.UnresolvedHost) and "does not resolve" in refusal.message


def test_local_names_are_refused_outside_local_mode_before_any_lookup():
    resolve = resolver({})  # a lookup would say "does not resolve", not "public"
    for url in ["https://metadata.google.internal/", "https://printer.local/", "https://a.localhost/"]:
        assert "public address" in refused(url, False, resolve).message


def test_local_mode_takes_localhost_over_http_when_it_resolves_to_loopback_only():
    url = "http://localhost:8080/hook"
    loopback = resolver({"localhost": ["::1", "127.0.0.1"]})
    assert notify.check_webhook_url(url, local_mode=True, resolve=loopback) == url
    assert notify.webhook_target(url, True, loopback).addresses == ("::1", "127.0.0.1")
    refused(url, True, resolver({"localhost": ["127.0.0.1", "10.0.0.1"]}))
    refused(url, False, loopback)


def test_http_is_for_loopback_in_local_mode_only():
    resolve = resolver({"hooks.shop.example": [PUBLIC_V4]})
    for local_mode in (False, True):
        assert "https://" in refused("http://hooks.shop.example/hook", local_mode, resolve).message
        assert "https://" in refused(f"http://{PUBLIC_V4}/hook", local_mode).message
    assert "https://" in refused("ftp://127.0.0.1/hook", True).message


@pytest.mark.parametrize(
    ("address", "public", "in_local_mode"),
    [
        (PUBLIC_V4, True, True),
        (PUBLIC_V6, True, True),
        ("::ffff:8.8.8.8", True, True),
        ("127.0.0.1", False, True),
        ("127.0.0.2", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("169.254.169.254", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("64:ff9b::a9fe:a9fe", False, False),
        ("2002:7f00:1::", False, False),  # 6to4 of 127.0.0.1: not this machine's loopback
        ("0.0.0.0", False, False),
        ("100.127.255.255", False, False),
        ("100.128.0.0", True, True),
    ],
)
def test_the_address_rule(address, public, in_local_mode):
    assert notify.public_address(ip_address(address)) is public
    assert notify.public_address(ip_address(address), local_mode=True) is in_local_mode
