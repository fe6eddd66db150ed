"""Setting the shop's settings (functions/merchant/shop.py) against the in-memory store: a write with
the version read wins only if no other came since; a write without one goes over whatever is there,
reading again when another slips in between, and never moves the version on by more than one."""

import pytest

from functions.merchant.shop import LAST_WRITE_ATTEMPTS, set_shop
from shared.errors import Busy, VersionConflict
from shared.shops import ShopChange, ShopSettings
from tests.fakes.merchants import FakeShopSettings

MERCHANT = "mer_" + "1" * 20


@pytest.fixture
def store() -> FakeShopSettings:
    fake = FakeShopSettings()
    fake.add(MERCHANT)
    return fake


def someone_else_writes(store: FakeShopSettings):
    def action(merchant_id: str, *_: object) -> None:
        with store.quietly():
            _, version = store.versioned_shop(merchant_id)
            store.set_shop(merchant_id, ShopSettings(name="Theirs"), version)

    return action


def test_a_write_with_the_version_read_moves_it_on_by_one(store):
    shop, version = set_shop(MERCHANT, ShopChange(name="Mine", version=0), store)
    assert (shop.name, version) == ("Mine", 1)
    assert store.versioned_shop(MERCHANT) == (ShopSettings(name="Mine"), 1)


def test_a_write_with_a_version_another_write_replaced_is_a_conflict_and_writes_nothing(store):
    set_shop(MERCHANT, ShopChange(name="Theirs", version=0), store)
    with pytest.raises(VersionConflict):
        set_shop(MERCHANT, ShopChange(name="Mine", version=0), store)
    assert store.versioned_shop(MERCHANT) == (ShopSettings(name="Theirs"), 1)


def test_the_same_write_sent_again_is_answered_alike(store):
    change = ShopChange(name="Mine", contact="QQ 1", version=0)
    assert set_shop(MERCHANT, change, store) == set_shop(MERCHANT, change, store)
    assert store.versioned_shop(MERCHANT)[1] == 1


def test_a_write_without_a_version_goes_over_one_that_slipped_in_between(store):
    store.before("set_shop", someone_else_writes(store), times=2)

    shop, version = set_shop(MERCHANT, ShopChange(name="Mine"), store)

    assert (shop.name, version) == ("Mine", 3)  # two others came, each between a read and its write
    assert store.versioned_shop(MERCHANT) == (ShopSettings(name="Mine"), 3)
    assert len(store.called("set_shop")) == 3


def test_a_write_without_a_version_gives_up_busy_when_others_keep_slipping_in(store):
    store.before("set_shop", someone_else_writes(store))
    with pytest.raises(Busy):
        set_shop(MERCHANT, ShopChange(name="Mine"), store)
    assert len(store.called("set_shop")) == LAST_WRITE_ATTEMPTS
    assert store.versioned_shop(MERCHANT)[0].name == "Theirs"
