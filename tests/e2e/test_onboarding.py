"""The issue's onboarding, end to end on the local runtime, as a new merchant would do it: the operator
opens the shop with `miaofa-ops merchants create`; the merchant sets its shop's settings, creates a
product and imports its stock with `miaofa-merchant` and the key it was given; a buyer pays; the
merchant sees the code sold, still with `miaofa-merchant` alone."""

import io
import json
from dataclasses import asdict

import pytest

from infra.merchant import cli as merchant_cli
from infra.ops import cli as ops_cli
from infra.ops.target import local_target
from tests.support import new_codes

pytestmark = pytest.mark.e2e


def ops(runtime, *argv: str) -> dict:
    console = ops_cli.Console(out=io.StringIO(), err=io.StringIO())
    code = ops_cli.main(list(argv), target=local_target(asdict(runtime.info)), console=console)
    assert code == 0, console.err.getvalue()
    return json.loads(console.out.getvalue())


def merchant(shop, key: str, *argv: str) -> dict | list:
    """One `miaofa-merchant … --json` command, as the merchant runs it with its own key."""
    console = merchant_cli.Console(
        out=io.StringIO(), err=io.StringIO(), environ={}, tty=False, sleep=lambda _: None
    )
    code = merchant_cli.main([*argv, "--json", "--url", shop.url, "--key", key], console=console)
    assert code == 0, console.err.getvalue()
    return json.loads(console.out.getvalue())


def test_a_new_merchant_opens_a_shop_stocks_a_product_and_sells_a_code(runtime, shop, tmp_path):
    opened = ops(runtime, "merchants", "create", "--name", "喵喵点卡", "--json")
    key = opened["api_key"]

    settings = merchant(
        shop, key, "shop", "set",
        "--logo-url", "https://cdn.example.com/neko.png",
        "--contact", "WeChat: nekocards",
        "--announcement", "24 小时自动发货",
        "--support-email", "help@neko.example.com",
        "--language", "zh-CN",
    )  # fmt: skip
    assert settings == merchant(shop, key, "shop", "show")
    assert settings == {
        "merchant_id": opened["merchant_id"],
        "name": "喵喵点卡",
        "logo_url": "https://cdn.example.com/neko.png",
        "contact": "WeChat: nekocards",
        "announcement": "24 小时自动发货",
        "support_email": "help@neko.example.com",
        "default_language": "zh-CN",
        "version": 1,
    }

    product = merchant(
        shop, key, "products", "create", "--name", "Steam 50", "--price", "35.00", "--max-per-order", "3",
        "--category", "Steam",
    )  # fmt: skip
    assert product["price"] == {"amount": 3500, "currency": "CNY"} and product["category"] == "Steam"
    codes = new_codes(3, prefix="ONBOARD")
    (tmp_path / "codes.txt").write_text("\n".join(codes) + "\n")
    imported = merchant(shop, key, "stock", "import", str(tmp_path / "codes.txt"), "--product", product["id"])
    assert (imported["added"], imported["duplicates"], imported["rejected"]) == (3, 0, 0)
    assert [p["id"] for p in merchant(shop, key, "products", "list")] == [product["id"]]

    order = shop.buy(product["id"])
    assert order["total"] == {"amount": 3500, "currency": "CNY"}
    assert runtime.sandbox.pay(order["order_id"], 3500, "CNY")
    delivered = shop.wait_for(order, "DELIVERED")

    (item,) = delivered["items"]
    assert item["code"] in codes
    levels = merchant(shop, key, "stock", "levels", "--product", product["id"])
    assert (levels["available"], levels["sold"]) == (2, 1)
    # The merchant sees the sale, and the code it sold, with the CLI too.
    (sold,) = merchant(shop, key, "orders", "list", "--status", "DELIVERED")["orders"]
    assert (sold["order_id"], sold["product_id"], sold["quantity"]) == (order["order_id"], product["id"], 1)
    shown = merchant(shop, key, "orders", "show", order["order_id"], "--codes")
    assert shown["items"] == [item] and shown["history_intact"] is True


def run(shop, *argv: str) -> tuple[int, str, str]:
    console = merchant_cli.Console(
        out=io.StringIO(), err=io.StringIO(), environ={}, tty=False, sleep=lambda _: None
    )
    code = merchant_cli.main([*argv, "--url", shop.url, "--key", shop.merchant_key], console=console)
    return code, console.out.getvalue(), console.err.getvalue()


def test_the_merchant_cli_refuses_what_the_shop_would_in_one_line(shop):
    before = json.loads(run(shop, "shop", "show", "--json")[1])

    assert run(shop, "shop", "set")[0] == 2  # nothing to change
    assert run(shop, "products", "create", "--name", "x", "--price", "35.001")[0] == 2
    assert run(shop, "products", "create", "--name", "x", "--price", "1e3")[0] == 2
    code, out, err = run(shop, "shop", "set", "--logo-url", "http://cdn.example.com/logo.png")

    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert "invalid_logo_url" in err and "https" in err
    assert json.loads(run(shop, "shop", "show", "--json")[1]) == before
