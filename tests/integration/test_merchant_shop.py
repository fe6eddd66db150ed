"""Shop settings through the local runtime: `GET/PUT /merchant/shop` reads and replaces them, every
rule refused with a 422 naming its field and nothing written, each merchant sees only its own shop,
and a PUT whose answer was lost and retried by the SDK still succeeds once."""

import boto3
import pytest

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
    }


def test_put_sets_every_setting_and_a_later_put_clears_what_it_leaves_out(shop, merchant):
    merchant_id, key = merchant
    response = shop.merchant("PUT", "/merchant/shop", key=key, json=FULL)
    assert response.status_code == 200, response.text
    assert response.json() == {"merchant_id": merchant_id, **FULL}
    assert get_shop(shop, key) == {"merchant_id": merchant_id, **FULL}

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
    assert get_shop(shop, key) == {"merchant_id": merchant_id, **FULL}
