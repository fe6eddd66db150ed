"""Shop settings through the local runtime: `GET/PUT /merchant/shop` reads and replaces them, every
rule refused with a 422 naming its field and nothing written, each merchant sees only its own shop,
and a PUT whose answer was lost and retried by the SDK still succeeds once.

Optimistic concurrency: GET answers a `version` that every write moves on by one; a PUT with the
version it read is refused (409 `version_conflict`, nothing written) once another write came, and two
PUTs of the same version at the same moment (real threads against the embedded AWS) are one 200 and
one 409. The same PUT sent again after a lost answer (by the SDK, or by the client) is not a conflict."""

import threading

import boto3
import pytest
import requests

from shared.adapters import merchants as merchant_store
from shared.settings import settings
from tests.faults_aws import lost_answer, on_table

FULL = {
    "name": "喵喵点卡 Neko Cards",
    "logo_url": "https://cdn.example.com/neko/logo.png",
    "contact": "WeChat: nekocards · QQ group 123456",
    "announcement": "春节期间 24 小时发货。\nOrders are delivered at once, day and night.",
    "support_email": "help@neko.example.com",
    "default_language": "en",
}


@pytest.fixture
def merchant(runtime) -> tuple[str, str]:
    """(merchant id, API key) of a new merchant of its own."""
    return merchant_store().create_merchant("Shop settings test")


def get_shop(shop, key: str) -> dict:
    response = shop.merchant("GET", "/merchant/shop", key=key)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.json()


def stored(merchant_id: str) -> dict:
    return boto3.client("dynamodb").get_item(
        TableName=settings().shop_table, Key={"pk": {"S": f"merchant#{merchant_id}"}}, ConsistentRead=True
    )["Item"]


def test_a_new_shop_has_its_name_and_defaults(shop, merchant):
    merchant_id, key = merchant
    assert get_shop(shop, key) == {
        "merchant_id": merchant_id,
        "name": "Shop settings test",
        "logo_url": None,
        "contact": None,
        "announcement": None,
        "support_email": None,
        "default_language": "zh-CN",
        "version": 0,
    }


def test_put_sets_every_setting_and_a_later_put_clears_what_it_leaves_out(shop, merchant):
    merchant_id, key = merchant
    response = shop.merchant("PUT", "/merchant/shop", key=key, json=FULL)
    assert response.status_code == 200, response.text
    assert response.json() == {"merchant_id": merchant_id, **FULL, "version": 1}
    assert get_shop(shop, key) == {"merchant_id": merchant_id, **FULL, "version": 1}

    again = shop.merchant("PUT", "/merchant/shop", key=key, json={"name": " Neko ", "contact": ""})
    assert again.status_code == 200, again.text
    assert get_shop(shop, key) == {
        "merchant_id": merchant_id,
        "name": "Neko",  # surrounding blanks dropped
        "logo_url": None,
        "contact": None,  # empty: cleared
        "announcement": None,
        "support_email": None,
        "default_language": "zh-CN",
        "version": 2,
    }
    assert not {"logo_url", "contact", "announcement", "support_email"} & set(stored(merchant_id))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 101),
        ("name", "two\nlines"),
        ("logo_url", "http://cdn.example.com/logo.png"),
        ("logo_url", "javascript:alert(1)"),
        ("logo_url", "https://user:pass@cdn.example.com/logo.png"),
        ("logo_url", "https://cdn.example.com/a logo.png"),
        ("contact", "line\nbreak"),
        ("contact", "x" * 201),
        ("announcement", "bell\x07"),
        ("announcement", "x" * 2001),
        ("support_email", "not an address"),
        ("default_language", "fr"),
        ("default_language", None),
        ("merchant_id", "mer_someone_else"),  # read-only
        ("version", -1),
        ("version", "1"),
        ("version", 1.5),
        ("version", True),
        ("version", 2**53),
    ],
)
def test_a_refused_setting_is_a_422_naming_its_field_and_changes_nothing(shop, merchant, field, value):
    merchant_id, key = merchant
    assert shop.merchant("PUT", "/merchant/shop", key=key, json=FULL).status_code == 200
    before = stored(merchant_id)

    response = shop.merchant("PUT", "/merchant/shop", key=key, json={**FULL, field: value})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == f"invalid_{field}" and error["message"].startswith(f"{field}:")
    assert stored(merchant_id) == before


def test_a_body_that_is_not_json_is_415_and_a_bad_json_body_400(shop, merchant):
    _, key = merchant
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain"):
        response = shop.merchant(
            "PUT", "/merchant/shop", key=key, data=b'{"name": "x"}', headers={"Content-Type": content_type}
        )
        assert response.status_code == 415, (content_type, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
    broken = shop.merchant(
        "PUT", "/merchant/shop", key=key, data=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    assert get_shop(shop, key)["name"] == "Shop settings test"


def test_each_merchant_reads_and_sets_only_its_own_shop(shop, merchant):
    merchant_id, key = merchant
    other_id, other_key = merchant_store().create_merchant("Another shop")

    assert shop.merchant("PUT", "/merchant/shop", key=other_key, json={"name": "Theirs"}).status_code == 200

    assert get_shop(shop, key)["name"] == "Shop settings test"
    assert get_shop(shop, other_key) == {
        **get_shop(shop, other_key),
        "merchant_id": other_id,
        "name": "Theirs",
    }
    assert shop.merchant("GET", "/merchant/shop", key="mk_test_" + "x" * 32).status_code == 403
    assert shop.http.get(f"{shop.url}/merchant/shop").status_code == 401


def test_a_put_whose_answer_is_lost_is_retried_to_the_same_settings(shop, merchant):
    """The SDK sends the UpdateItem again after its first answer is lost: the conditional write on the
    merchant's own item applies the same values twice, and the merchant gets its 200."""
    merchant_id, key = merchant
    with lost_answer("UpdateItem", on_table(settings().shop_table, pk=f"merchant#{merchant_id}")) as fault:
        response = shop.merchant("PUT", "/merchant/shop", key=key, json=FULL)
    assert fault.hits == 1 and fault.seen == 2
    assert response.status_code == 200, response.text
    assert get_shop(shop, key) == {"merchant_id": merchant_id, **FULL, "version": 1}


def put_shop(shop, key: str, settings: dict, version: int | None) -> requests.Response:
    body = settings if version is None else {**settings, "version": version}
    return shop.merchant("PUT", "/merchant/shop", key=key, json=body)


def test_a_put_of_a_version_another_write_replaced_is_409_and_writes_nothing(shop, merchant):
    merchant_id, key = merchant
    read = get_shop(shop, key)["version"]
    assert put_shop(shop, key, FULL, read).json()["version"] == read + 1  # someone else's change
    before = stored(merchant_id)

    response = put_shop(shop, key, {**FULL, "contact": "mine"}, read)  # made against what was read

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "version_conflict" and f"now version {read + 1}" in error["message"]
    assert stored(merchant_id) == before
    assert put_shop(shop, key, {**FULL, "contact": "mine"}, read + 1).json()["version"] == read + 2


def test_a_put_whose_answer_is_lost_is_not_a_conflict_and_moves_the_version_once(shop, merchant):
    """The SDK's retry of the conditional write finds the version its first attempt made, with its
    own values: done, not a conflict; and the version moved on by one, not two."""
    merchant_id, key = merchant
    with lost_answer("UpdateItem", on_table(settings().shop_table, pk=f"merchant#{merchant_id}")) as fault:
        response = put_shop(shop, key, FULL, 0)
    assert fault.hits == 1 and fault.seen == 2
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    assert get_shop(shop, key) == {"merchant_id": merchant_id, **FULL, "version": 1}

    # A last-write-wins PUT (no version) whose answer is lost moves it on by one too.
    with lost_answer("UpdateItem", on_table(settings().shop_table, pk=f"merchant#{merchant_id}")) as fault:
        response = put_shop(shop, key, {**FULL, "contact": "again"}, None)
    assert fault.hits == 1 and response.status_code == 200, response.text
    assert get_shop(shop, key)["version"] == response.json()["version"] == 2


def test_the_client_sending_the_same_put_again_is_answered_alike_until_another_write_comes(shop, merchant):
    """A client whose answer was lost on the way back (HTTP) sends the same PUT again: the same answer.
    Once another write replaced those settings, the same PUT is a conflict again."""
    _, key = merchant
    first = put_shop(shop, key, FULL, 0)
    again = put_shop(shop, key, FULL, 0)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json() == again.json() and again.json()["version"] == 1

    assert put_shop(shop, key, {**FULL, "contact": "theirs"}, 1).status_code == 200
    late = put_shop(shop, key, FULL, 0)
    assert late.status_code == 409 and late.json()["error"]["code"] == "version_conflict"
    assert get_shop(shop, key)["contact"] == "theirs"


@pytest.mark.parametrize("round_", range(3))
def test_of_concurrent_puts_of_the_same_version_exactly_one_wins(shop, merchant, round_):
    """Real threads, each with its own connection, PUT different settings against the version they all
    read, released together: one 200, the others 409, and the settings are the winner's."""
    merchant_id, key = merchant
    read = get_shop(shop, key)["version"]
    writers = 4
    start = threading.Barrier(writers)
    answers: dict[int, requests.Response] = {}

    def put(n: int) -> None:
        body = {**FULL, "contact": f"writer {n}", "version": read}
        start.wait()
        answers[n] = requests.put(
            f"{shop.url}/merchant/shop", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    threads = [threading.Thread(target=put, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200] + [409] * (writers - 1), [a.text for a in answers.values()]
    (winner,) = [n for n, answer in answers.items() if answer.status_code == 200]
    refused = {answer.json()["error"]["code"] for answer in answers.values() if answer.status_code == 409}
    assert refused == {"version_conflict"}
    assert get_shop(shop, key) == {
        "merchant_id": merchant_id,
        **FULL,
        "contact": f"writer {winner}",
        "version": read + 1,
    }


@pytest.fixture(params=["fake", "real"])
def shop_store(request):
    """(store, merchant id): tests/fakes/merchants.py's fake, or the real store on the embedded AWS."""
    if request.param == "fake":
        from tests.fakes.merchants import FakeShopSettings

        fake = FakeShopSettings()
        fake.add("mer_" + "2" * 20, "Contract")
        return fake, "mer_" + "2" * 20
    request.getfixturevalue("runtime")
    return merchant_store(), merchant_store().create_merchant("Contract")[0]


def test_the_fake_keeps_the_stores_contract(shop_store):
    from shared.errors import NotFound, VersionConflict
    from shared.shops import ShopSettings

    store, merchant_id = shop_store
    mine, theirs = ShopSettings(name="Mine", contact="QQ 1"), ShopSettings(name="Theirs")
    assert store.versioned_shop(merchant_id) == (ShopSettings(name="Contract"), 0)
    assert store.set_shop(merchant_id, mine, 0) == 1
    assert store.set_shop(merchant_id, mine, 0) == 1  # the same write again
    with pytest.raises(VersionConflict):
        store.set_shop(merchant_id, theirs, 0)
    assert store.versioned_shop(merchant_id) == (mine, 1)
    assert store.set_shop(merchant_id, theirs, 1) == 2
    with pytest.raises(VersionConflict):
        store.set_shop(merchant_id, mine, 0)  # its own write, since replaced
    with pytest.raises(NotFound):
        store.set_shop("mer_" + "9" * 20, mine, 0)
