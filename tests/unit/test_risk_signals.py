"""The risk engine's signals (shared/risk/signals.py): values normalised as the rules' lists are,
the bundled disposable-domain list, and keyed hashes in place of every personal value."""

import re

import pytest
from pydantic import ValidationError

from shared.money import Money
from shared.risk.signals import (
    DIGEST_HEX,
    Fingerprints,
    History,
    Signals,
    Velocity,
    device_id,
    disposable_domains,
    is_disposable,
    normal_client,
    normal_country,
    normal_email,
    normal_payer,
    signals_used,
)

CNY = "CNY"
KEY = Fingerprints.for_merchant("a-server-secret-of-some-length", "mer_1")


def signals(**changes) -> Signals:
    values = {
        "email": "Buyer@Example.ORG",
        "client": "2001:db8:1:2:3:4:5:6",
        "device": "dev-7f3a",
        "payer": "alipay:2088102177846875",
        "card_country": "cn",
        "amount": Money(amount=1999, currency=CNY),
        "quantity": 1,
        "product_id": "prd_1",
    }
    return Signals(**{**values, **changes})


def test_values_are_normalised_as_the_rules_lists_are():
    order = signals()
    assert order.email == "buyer@example.org"
    assert order.email_domain == "example.org"
    assert order.client == "2001:db8:1:2::/64"  # shared/clients.py's key: an IPv6 client is its /64
    assert order.card_country == "CN"
    assert order.value("email_domain") == "example.org"
    assert signals(client="203.0.113.9").client == "203.0.113.9"
    assert signals(client="::ffff:203.0.113.9").client == "203.0.113.9"
    assert signals(client="").client is None  # no address (a console invoke)
    assert order.history.first_order and not History(paid_orders=1).first_order


@pytest.mark.parametrize("device", ["", "x" * 129, "has space", "naïve", "tab\t"])
def test_a_device_id_not_in_the_expected_form_is_no_device_never_an_error(device):
    assert device_id(device) is None
    assert signals(device=device).device is None


def test_a_payer_names_its_provider_and_keeps_the_providers_case():
    assert normal_payer(" stripe:Fp_AbC123 ") == "stripe:Fp_AbC123"
    for bad in ("2088102177846875", "Alipay:1", "alipay:", "alipay: 1"):
        with pytest.raises(ValueError):
            normal_payer(bad)


@pytest.mark.parametrize(
    "email", ["no-at-sign", "@example.org", "a@localhost", "a b@example.org", "a@exa_mple.org"]
)
def test_an_e_mail_that_is_not_one_is_refused(email):
    with pytest.raises(ValueError):
        normal_email(email)


def test_a_client_entry_is_an_address_or_a_network_in_the_unit_clients_are_counted_in():
    assert normal_client("203.0.113.7") == "203.0.113.7"
    assert normal_client("203.0.113.7/32") == "203.0.113.7"
    assert normal_client("198.51.100.77/24") == "198.51.100.0/24"
    assert normal_client("2001:db8::1") == "2001:db8::/64"
    assert normal_client("2001:db8:0:0:1::/80") == "2001:db8::/64"  # narrower than a client: its /64
    assert normal_client("2001:db8::/48") == "2001:db8::/48"
    with pytest.raises(ValueError):
        normal_client("example.org")
    with pytest.raises(ValueError):
        normal_country("CHN")


def test_the_bundled_list_names_well_known_throw_away_services_and_matches_their_subdomains():
    listed = disposable_domains()
    assert 50 <= len(listed) <= 500  # a small, hand-picked list (shared/risk/disposable_domains.txt)
    assert all(re.fullmatch(r"[a-z0-9.-]+\.[a-z]+", domain) for domain in listed)
    assert is_disposable("mailinator.com") and is_disposable("eu.mailinator.com")
    assert is_disposable("linshiyouxiang.net")  # 临时邮箱
    assert not is_disposable("qq.com") and not is_disposable("gmail.com") and not is_disposable("163.com")
    assert not is_disposable("21cn.com")  # a real provider the upstream list names: left out on purpose
    assert not is_disposable("notmailinator.com")
    assert signals(email="x@Sharklasers.com").disposable_domain
    assert not signals().disposable_domain


def test_counts_must_be_for_this_orders_own_values():
    mine = signals(velocity={("payer", "alipay:2088102177846875", 10): Velocity(orders=2, amount=3998)})
    assert mine.velocity[("payer", "alipay:2088102177846875", 10)].orders == 2
    with pytest.raises(ValidationError, match="a count for another payer"):
        signals(velocity={("payer", "alipay:2088000000000000", 10): Velocity(orders=2, amount=3998)})


def test_hashes_are_keyed_per_merchant_truncated_and_stable():
    other_shop = Fingerprints.for_merchant("a-server-secret-of-some-length", "mer_2")
    other_secret = Fingerprints.for_merchant("another-server-secret-entirely", "mer_1")
    digest = KEY.of("email", "buyer@example.org")
    assert re.fullmatch(rf"[0-9a-f]{{{DIGEST_HEX}}}", digest)
    assert digest == KEY.of("email", "buyer@example.org")
    assert digest != other_shop.of("email", "buyer@example.org")  # two shops' records cannot be joined
    assert digest != other_secret.of("email", "buyer@example.org")
    assert digest != KEY.of("device", "buyer@example.org")  # the kind is part of what is hashed
    assert repr(KEY) == "Fingerprints()"  # the key never lands in a log line
    with pytest.raises(ValueError):
        Fingerprints.for_merchant("", "mer_1")


def test_signals_used_hold_hashes_never_a_personal_value():
    order = signals(velocity={("device", "dev-7f3a", 60): Velocity(orders=3, amount=5997)})
    used = signals_used(order, KEY)
    text = used.model_dump_json()
    for personal in ("buyer@example.org", "example.org", "2001:db8:1:2", "dev-7f3a", "2088102177846875"):
        assert personal not in text
    assert used.email == KEY.of("email", "buyer@example.org")
    assert used.client == KEY.of("client", "2001:db8:1:2::/64")
    assert used.payer == KEY.of("payer", "alipay:2088102177846875")
    assert used.card_country == "CN" and used.amount.amount == 1999 and used.product_id == "prd_1"
    assert [(c.kind, c.window, c.orders) for c in used.velocity] == [("device", 60, 3)]
    assert signals_used(signals(device=None, payer=None), KEY).payer is None
