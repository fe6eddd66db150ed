"""Generated and license products' terms (docs/licenses.md): required for their delivery and only for it,
checked as the pure modules check them, and never counted as stock."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from functions.merchant.catalog import ProductChange, ProductRequest
from shared import generated
from shared.errors import Invalid
from shared.products import GeneratedTerms, LicenseTerms, Product

PRICE = {"amount": 500, "currency": "CNY"}


def request(**fields) -> ProductRequest:
    return ProductRequest.model_validate({"name": "Gift card", "price": PRICE, **fields})


def test_a_generated_product_takes_a_pattern_and_an_optional_cap():
    made = request(delivery="generated", generated={"pattern": "C\\ARD-XXXX-XXXX-9999", "cap": 1000})
    assert made.generated == GeneratedTerms(pattern="C\\ARD-XXXX-XXXX-9999", cap=1000)
    assert request(delivery="generated", generated={"pattern": "XXXX-XXXX-XXXX"}).generated.cap is None


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("XXXX-XXXX", "bits of randomness"),  # 39.6 bits
        ("GIFT XXXXXXXXXX", "position 5"),
        ("XXXXXXXXXX\\", "lone '\\'"),
        ("X" * 65, "at most 64"),
    ],
)
def test_a_pattern_that_breaks_a_rule_is_422_invalid_code_pattern_naming_it(pattern, words):
    with pytest.raises(Invalid) as refused:
        request(delivery="generated", generated={"pattern": pattern})
    assert refused.value.code == "invalid_code_pattern" and words in refused.value.message


@pytest.mark.parametrize("cap", [0, -1, "10", 1.5])
def test_a_cap_is_a_whole_number_from_one(cap):
    with pytest.raises(ValidationError):
        request(delivery="generated", generated={"pattern": "XXXXXXXXXX", "cap": cap})


def test_an_example_is_a_code_of_the_pattern():
    terms = GeneratedTerms(pattern="C\\ARD-XXXX-XXXX-9999")
    examples = {terms.example() for _ in range(20)}
    assert all(e.startswith("CARD-") and generated.validate(terms.pattern).matches(e) for e in examples)
    assert len(examples) == 20
    unescaped = GeneratedTerms(pattern="CARD-XXXXXXXXXX")
    assert len({unescaped.example()[1] for _ in range(50)}) > 1  # the A is a random letter, not an "A"


def test_a_license_product_takes_its_terms_with_the_formats_limits():
    terms = request(
        delivery="license",
        license={
            "entitlements": ["pro", "updates:2027"],
            "max_machines": 3,
            "valid_days": 365,
            "prefix": "ACME",
        },
    ).license
    assert terms == LicenseTerms(
        entitlements=("pro", "updates:2027"), max_machines=3, valid_days=365, prefix="ACME"
    )
    default = request(delivery="license", license={"max_machines": 1}).license
    assert (default.entitlements, default.valid_days, default.prefix) == ((), None, "LIC")


@pytest.mark.parametrize(
    "terms",
    [
        {"max_machines": 0},
        {"max_machines": 65536},
        {"max_machines": 1, "entitlements": ["pro", "pro"]},
        {"max_machines": 1, "entitlements": ["has space"]},
        {"max_machines": 1, "entitlements": ["x" * 33]},
        {"max_machines": 1, "entitlements": [f"e{n}" for n in range(17)]},
        {"max_machines": 1, "valid_days": 0},
        {"max_machines": 1, "valid_days": 10_001},  # past what the format's 32-bit times carry
        {"max_machines": 1, "prefix": "acme"},
        {"max_machines": 1, "prefix": "1ACME"},
        {"max_machines": 1, "prefix": "ABCDEFGHIJKLM"},
        {"max_machines": 1, "surprise": True},
        {"entitlements": ["pro"]},  # max_machines is required
    ],
)
def test_license_terms_the_format_cannot_carry_are_refused(terms):
    with pytest.raises(ValidationError):
        request(delivery="license", license=terms)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"delivery": "generated"}, "generated {pattern, cap} is required for delivery 'generated'"),
        ({"generated": {"pattern": "XXXXXXXXXX"}}, "and only for it"),
        ({"delivery": "license"}, "license {entitlements, max_machines"),
        ({"delivery": "manual", "manual": {}, "license": {"max_machines": 1}}, "and only for it"),
    ],
)
def test_terms_are_required_for_their_delivery_and_only_for_it(fields, words):
    with pytest.raises(ValidationError, match=words.replace("{", r"\{").replace("}", r"\}")):
        request(**fields)


def test_made_products_are_not_stocked():
    for fields in (
        {"delivery": "generated", "generated": GeneratedTerms(pattern="XXXXXXXXXX")},
        {"delivery": "license", "license": LicenseTerms(max_machines=2)},
    ):
        product = Product(
            product_id="prd_1",
            merchant_id="mer_1",
            name="n",
            description="",
            price=PRICE,
            max_per_order=5,
            shards=1,
            active=True,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            **fields,
        )
        assert not product.stocked


def test_a_change_may_give_new_terms_of_the_products_delivery_only():
    product = Product(
        product_id="prd_1",
        merchant_id="mer_1",
        name="n",
        description="",
        price=PRICE,
        delivery="generated",
        generated=GeneratedTerms(pattern="XXXXXXXXXX"),
        max_per_order=5,
        shards=1,
        active=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    changed = ProductChange.model_validate({"generated": {"pattern": "GIFT-XXXXXXXXXX", "cap": 10}}).apply(
        product
    )
    assert changed.generated == GeneratedTerms(pattern="GIFT-XXXXXXXXXX", cap=10)
    with pytest.raises(Invalid, match="and only for it"):
        ProductChange.model_validate({"license": {"max_machines": 1}}).apply(product)
    with pytest.raises(ValidationError):
        ProductChange.model_validate({"generated": None})
    license_change = ProductChange.model_validate({"license": {"entitlements": ["pro"], "max_machines": 2}})
    assert license_change.license == LicenseTerms(entitlements=("pro",), max_machines=2)
