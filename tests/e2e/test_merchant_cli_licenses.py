"""`miaofa-merchant licenses` and `license-keys` against the local runtime (docs/licenses.md)."""

import io
import json

import pytest

from infra.merchant import cli
from shared.adapters import merchants as merchant_store
from tests.support import poll

pytestmark = pytest.mark.e2e


def run(shop, *argv, key=None):
    """(exit code, stdout, stderr) of one command, as a merchant would run it."""
    console = cli.Console(out=io.StringIO(), err=io.StringIO(), environ={}, tty=False, sleep=lambda _: None)
    code = cli.main([*argv, "--url", shop.url, "--key", key or shop.merchant_key], console=console)
    return code, console.out.getvalue(), console.err.getvalue()


@pytest.fixture
def key(runtime) -> str:
    return merchant_store().create_merchant("CLI license test")[1]


def test_licenses_are_listed_shown_revoked_reinstated_reissued_and_keys_rotated_and_retired(shop, key):
    created = shop.merchant(
        "POST",
        "/merchant/products",
        key=key,
        json={
            "name": "Tool",
            "price": {"amount": 500, "currency": "CNY"},
            "delivery": "license",
            "license": {"max_machines": 2, "entitlements": ["pro"]},
        },
    )
    assert created.status_code == 201, created.text
    order = shop.buy(created.json()["id"], 2)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    delivered = shop.wait_for(order, "DELIVERED")
    texts = [item["code"] for item in delivered["items"]]
    text = texts[0]
    activated = shop.http.post(f"{shop.url}/api/licenses/activate", json={"license": text, "machine": "pc-1"})
    assert activated.status_code == 200, activated.text

    code, out, err = run(shop, "licenses", "list", "--order", order["order_id"], key=key)
    assert code == 0, err
    assert "2 licenses" in out and "1/2 machines" in out and text not in out
    code, out, _ = run(shop, "licenses", "list", "--order", order["order_id"], "--json", key=key)
    license_id = json.loads(out)["licenses"][0]["license_id"]

    code, out, _ = run(shop, "licenses", "show", license_id, key=key)
    assert code == 0 and "machine" in out and "pc-1" not in out
    for _ in range(2):  # safe to run again
        code, out, _ = run(shop, "licenses", "revoke", license_id, "--reason", "chargeback", key=key)
        assert code == 0 and "revoked" in out
    code, out, _ = run(shop, "licenses", "show", license_id, key=key)
    assert "by merchant: chargeback" in out
    code, out, _ = run(shop, "licenses", "reinstate", license_id, key=key)
    assert code == 0 and "active" in out

    code, out, err = run(shop, "licenses", "show", "lic_" + "0" * 20, key=key)
    assert code == 1 and "license_not_found" in err

    code, out, _ = run(shop, "license-keys", "show", "--json", key=key)
    before = json.loads(out)
    code, out, err = run(shop, "license-keys", "rotate", key=key)
    assert code == 0 and "current" in out and "stay valid" in err
    code, out, _ = run(shop, "license-keys", "show", "--json", key=key)
    after = json.loads(out)
    assert after["current"] != before["current"]
    assert [k["kid"] for k in after["keys"]] == [before["current"], after["current"]]

    # The old key leaked: retired (safe to run again) once every process has seen the rotation (1 s +
    # 2 s here), then the license it signed reissued.
    code, out, err = run(shop, "license-keys", "retire", before["current"], key=key)
    assert code == 1 and "license_key_recent" in err, err
    poll(lambda: run(shop, "license-keys", "retire", before["current"], key=key)[0] == 0 or None, deadline=10)
    for _ in range(2):
        code, out, err = run(shop, "license-keys", "retire", before["current"], key=key)
        assert code == 0, err
        assert f"{before['current']}  retired" in out and "licenses reissue" in err
    code, out, err = run(shop, "license-keys", "retire", after["current"], key=key)
    assert code == 1 and "license_key_current" in err
    code, out, err = run(shop, "licenses", "reissue", license_id, key=key)
    assert code == 0 and "active" in out and text not in out, err
    shown = [item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]]
    (reissued,) = set(shown) - set(texts)  # the one reissued (either unit), signed by the current key
    validated = shop.http.post(f"{shop.url}/api/licenses/validate", json={"license": reissued})
    assert (validated.status_code, validated.json()["license_id"]) == (200, license_id)
