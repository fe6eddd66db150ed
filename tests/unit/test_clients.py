"""A client is its source address, an IPv6 subscriber its /64 (shared/clients.py): what per-client
buckets and limits count, so one client cannot become many by changing the end of its address."""

import pytest

from shared.clients import client_key


@pytest.mark.parametrize("address", ["203.0.113.7", "127.0.0.1", "10.0.0.255"])
def test_an_ipv4_address_is_its_own_key(address):
    assert client_key(address) == address


def test_every_address_of_an_ipv6_64_is_one_client():
    keys = {
        client_key("2001:db8:1:2::1"),
        client_key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
        client_key("2001:0db8:0001:0002:0:0:0:abcd"),  # written out longhand
        client_key("2001:DB8:1:2::ABCD"),  # upper case
    }
    assert keys == {"2001:db8:1:2::/64"}


def test_neighbouring_ipv6_64s_are_different_clients():
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")


def test_an_ipv4_mapped_ipv6_address_is_the_ipv4_client():
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:cb00:7107") == "203.0.113.7"  # the same, in hex


def test_what_is_not_an_address_is_keyed_as_given():
    """API Gateway's console test invokes send "test-invoke-source-ip": keyed, never a crash."""
    assert client_key("test-invoke-source-ip") == "test-invoke-source-ip"
    assert client_key(" 203.0.113.7 ") == "203.0.113.7"
