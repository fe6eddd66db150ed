"""`miaofa-merchant products` for generated and license products, against the local runtime: created with
their flags (the example code of a pattern printed), shown, changed (only the terms given, the rest kept),
and wrong combinations refused in one line before anything is sent."""

import pytest

from shared import generated
from tests.e2e.test_merchant_cli_delivery import as_json, run

pytestmark = pytest.mark.e2e

CREATE = ("products", "create", "--name", "x", "--price", "1.00")


@pytest.fixture
def key(runtime):
    from shared.adapters import merchants

    return merchants().create_merchant("CLI made codes")[1]


def test_a_generated_product_is_made_shown_and_changed_with_its_example(shop, key):
    code, out, err = run(
        shop,
        *CREATE,
        "--delivery",
        "generated",
        "--pattern",
        "C\\ARD-XXXX-XXXX-9999",
        "--cap",
        "500",
        key=key,
    )
    assert code == 0, err
    product_id = out.split()[0]
    assert "(generated)" in out
    example = err.split("example code: ", 1)[1].split()[0]
    assert example.startswith("CARD-") and generated.validate("C\\ARD-XXXX-XXXX-9999").matches(example)
    code, out, err = run(shop, "products", "show", product_id, key=key)
    assert "generated: pattern C\\ARD-XXXX-XXXX-9999, at most 500 codes" in out

    changed = as_json(shop, "products", "change", product_id, "--cap", "none", key=key)
    assert changed["generated"] == {"pattern": "C\\ARD-XXXX-XXXX-9999", "cap": None}  # the pattern kept
    changed = as_json(shop, "products", "change", product_id, "--pattern", "XXXXX-XXXXX", key=key)
    assert changed["generated"] == {"pattern": "XXXXX-XXXXX", "cap": None}
    assert generated.validate("XXXXX-XXXXX").matches(changed["example"])


def test_a_license_product_is_made_and_changed_with_its_flags(shop, key):
    made = as_json(
        shop,
        *CREATE,
        "--delivery",
        "license",
        "--entitlement",
        "pro",
        "--entitlement",
        "updates:2027",
        "--max-machines",
        "3",
        "--valid-days",
        "365",
        "--license-prefix",
        "ACME",
        key=key,
    )
    assert made["delivery"] == "license" and made["license"] == {
        "entitlements": ["pro", "updates:2027"],
        "max_machines": 3,
        "valid_days": 365,
        "prefix": "ACME",
    }
    code, out, err = run(shop, "products", "show", made["id"], key=key)
    assert "license: ACME-…, pro, updates:2027, 3 machines, valid 365 days" in out
    changed = as_json(
        shop, "products", "change", made["id"], "--valid-days", "none", "--max-machines", "5", key=key
    )
    assert changed["license"] == {
        "entitlements": ["pro", "updates:2027"],
        "max_machines": 5,
        "valid_days": None,
        "prefix": "ACME",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((*CREATE, "--delivery", "generated"), "--delivery generated needs --pattern"),
        ((*CREATE, "--pattern", "XXXXXXXXXX"), "--pattern, --cap go with --delivery generated"),
        ((*CREATE, "--delivery", "license"), "--delivery license needs --max-machines"),
        (
            (*CREATE, "--delivery", "generated", "--pattern", "XXXXXXXXXX", "--max-machines", "2"),
            "go with --delivery license",
        ),
        ((*CREATE, "--delivery", "license", "--max-machines", "0"), "--max-machines: must be 1 or more"),
    ],
)
def test_wrong_combinations_are_refused_before_anything_is_sent(shop, key, argv, message):
    code, out, err = run(shop, *argv, key=key)
    assert code == 2 and message in err and out == ""


def test_a_pattern_the_api_refuses_is_said_with_its_rule(shop, key):
    code, _, err = run(shop, *CREATE, "--delivery", "generated", "--pattern", "XXXX", key=key)
    assert code == 1 and "bits of randomness" in err


def test_terms_of_another_delivery_are_refused_by_change(shop, key):
    made = as_json(shop, *CREATE, "--delivery", "generated", "--pattern", "XXXXXXXXXX", key=key)
    code, _, err = run(shop, "products", "change", made["id"], "--max-machines", "2", key=key)
    assert code == 2 and "are for a license product" in err
