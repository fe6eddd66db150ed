"""`miaofa-merchant` for top-up and manual delivery, against the local runtime: a manual product made
with a fields file, its paid order in `fulfilments list` (late ones marked), fulfilled by `orders
fulfil` (again after a lost answer, and again by hand: the same answer), the buyer's fields shown only
when asked; an upstream set, shown and deleted, and a top-up product sold through it; bad
combinations refused in one line before anything is sent."""

import io
import json
import re
import secrets
from datetime import datetime, timedelta

import pytest

from infra.local.upstream import FakeUpstream
from infra.merchant import cli
from shared.orders import utcnow

pytestmark = pytest.mark.e2e

FIELDS = [
    {"name": "uid", "label": {"zh-CN": "游戏 UID", "en": "Game UID"}, "type": "number", "confirm": True},
    {
        "name": "server",
        "label": {"zh-CN": "区服", "en": "Server"},
        "type": "select",
        "options": ["Asia", "Europe"],
    },
]
GIVEN = {"uid": "10086", "server": "Asia"}


def run(shop, *argv, key, stdin="", now=None):
    """(exit code, stdout, stderr) of one command, as a merchant would run it."""
    console = cli.Console(
        out=io.StringIO(),
        err=io.StringIO(),
        stdin=io.StringIO(stdin),
        environ={},
        tty=False,
        sleep=lambda _: None,
    )
    if now is not None:
        console.now = lambda: now
    code = cli.main([*argv, "--url", shop.url, "--key", key], console=console)
    return code, console.out.getvalue(), console.err.getvalue()


def as_json(shop, *argv, key, stdin=""):
    code, out, err = run(shop, *argv, "--json", key=key, stdin=stdin)
    assert code == 0, (argv, err)
    return json.loads(out)


@pytest.fixture
def key(runtime):
    """A merchant of its own (its queue of fulfilments is this test's alone): its API key."""
    from shared.adapters import merchants

    return merchants().create_merchant("CLI delivery")[1]


@pytest.fixture
def fields_file(tmp_path):
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(FIELDS, ensure_ascii=False))
    return path


def paid(shop, product_id: str, quantity: int = 1) -> dict:
    answer = shop.checkout(product_id, quantity, buyer_input=GIVEN)
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return order


def test_a_manual_order_is_listed_fulfilled_once_and_shows_the_buyers_fields_only_when_asked(
    shop, key, fields_file, tmp_path, monkeypatch
):
    product = as_json(
        shop,
        "products",
        "create",
        "--name",
        "Netflix 1 month",
        "--price",
        "30.00",
        "--delivery",
        "manual",
        "--promise-minutes",
        "30",
        "--deadline-minutes",
        "120",
        "--buyer-input",
        str(fields_file),
        key=key,
    )
    assert (product["delivery"], product["manual"]) == (
        "manual",
        {"promise_minutes": 30, "deadline_minutes": 120},
    )
    assert [f["name"] for f in product["buyer_input"]] == ["uid", "server"]
    code, out, _ = run(shop, "products", "show", product["id"], key=key)
    assert code == 0 and "manual: promised within 30 min" in out
    assert (
        "uid     number, required, asked twice, ≤ 100 characters  游戏 UID / Game UID" in out
        and "one of Asia | Europe" in out
    )
    # Its fields and promise change (never its delivery); the deadline not given is kept.
    changed = as_json(
        shop,
        "products",
        "change",
        product["id"],
        "--promise-minutes",
        "20",
        "--buyer-input",
        "-",
        key=key,
        stdin=json.dumps(FIELDS),
    )
    assert changed["manual"] == {"promise_minutes": 20, "deadline_minutes": 120}

    order = paid(shop, product["id"], quantity=2)
    order_id = order["order_id"]
    shop.wait_for(order, "PAID")
    waiting = as_json(shop, "fulfilments", "list", key=key)["orders"]
    assert [(o["order_id"], o["product_id"], o["quantity"]) for o in waiting] == [
        (order_id, product["id"], 2)
    ]
    (entry,) = waiting
    promise = datetime.fromisoformat(entry["promised_by"]) - datetime.fromisoformat(entry["paid_at"])
    assert timedelta(minutes=19) < promise <= timedelta(minutes=20)
    code, out, _ = run(shop, "fulfilments", "list", key=key)
    assert code == 0 and re.search(rf"^{order_id}  {product['id']}  x2 .* in 1\d min$", out, re.M), out
    assert out.splitlines()[-1] == "1 order waiting"
    code, out, _ = run(shop, "fulfilments", "list", key=key, now=utcnow() + timedelta(minutes=45))
    assert "LATE by 2" in out and out.splitlines()[-1] == "1 order waiting, 1 late"

    # The buyer's fields are personal data: printed only when asked.
    code, out, err = run(shop, "orders", "show", order_id, key=key)
    assert code == 0 and "input     2 fields from the buyer (--buyer-input prints them" in out
    assert "10086" not in out + err
    assert "buyer_input" not in as_json(shop, "orders", "show", order_id, key=key)
    assert as_json(shop, "orders", "show", order_id, "--buyer-input", key=key)["buyer_input"] == GIVEN
    code, out, _ = run(shop, "orders", "show", order_id, "--buyer-input", key=key)
    assert code == 0 and "  uid     10086" in out and "  server  Asia" in out

    # Fulfilled once; its answer lost (a 503 after the API did it): sent again, the same answer.
    text = tmp_path / "delivery.txt"
    text.write_text("Log in as buyer@example.com\nPassword: CLI-SECRET-PW\n")
    fulfil = (
        "orders",
        "fulfil",
        order_id,
        "--text-file",
        str(text),
        "--code",
        "CLI-GIFT-1",
        "--code",
        "CLI-GIFT-2",
    )
    real, sent = cli.Api.send, []

    def answer_lost_once(self, method, path, **kwargs):
        reply = real(self, method, path, **kwargs)
        if path.endswith("/fulfil"):
            sent.append(reply.status)
            if len(sent) == 1:
                return cli.Reply(503, {}, b'{"error": {"code": "unavailable", "message": "lost"}}')
        return reply

    monkeypatch.setattr(cli.Api, "send", answer_lost_once)
    code, out, err = run(shop, *fulfil, key=key)
    monkeypatch.setattr(cli.Api, "send", real)
    assert (code, sent) == (0, [200, 200]), err
    assert "503 unavailable; trying again" in err
    assert out == f"{order_id}  DELIVERED  fulfilled with a text (51 characters) and 2 codes\n"
    assert as_json(shop, *fulfil, key=key) == {"order_id": order_id, "status": "DELIVERED"}  # by hand, again
    code, _, err = run(shop, "orders", "fulfil", order_id, "--text", "something else", key=key)
    assert code == 1 and "order_not_awaiting_fulfilment" in err

    assert as_json(shop, "fulfilments", "list", key=key) == {"orders": []}
    buyer = shop.order(order_id, order["access_token"]).json()
    assert buyer["status"] == "DELIVERED" and buyer["text"] == text.read_text().rstrip("\n")
    code, out, err = run(shop, "orders", "show", order_id, key=key)
    assert code == 0 and "fulfilled by hand: a text (51 characters) and 2 codes (--codes prints it)" in out
    assert "CLI-SECRET-PW" not in out + err and "CLI-GIFT" not in out + err
    code, out, _ = run(shop, "orders", "show", order_id, "--codes", key=key)
    assert "  Password: CLI-SECRET-PW" in out and "codes\n  CLI-GIFT-1\n  CLI-GIFT-2" in out
    shown = as_json(shop, "orders", "show", order_id, "--codes", key=key)
    assert shown["fulfilment"]["codes"] == ["CLI-GIFT-1", "CLI-GIFT-2"]


def test_upstreams_set_show_delete_and_a_top_up_sold_through_one(shop, key, fields_file, tmp_path):
    secret = "upsec_" + secrets.token_urlsafe(32)
    with FakeUpstream(secret) as fake:
        # No secret given: the shop makes one, printed this once.
        code, out, err = run(shop, "upstreams", "set", "games", fake.base_url, key=key)
        assert code == 0, err
        made = out.split("secret", 1)[1].split()[0]
        assert made.startswith("upsec_") and "shown only now" in err
        assert as_json(shop, "upstreams", "show", "games", key=key) == {
            "name": "games",
            "url": fake.base_url,
            "connect_timeout_ms": 2000,
            "read_timeout_ms": 5000,
        }
        code, out, _ = run(shop, "upstreams", "show", "games", key=key)
        assert code == 0 and fake.base_url in out and made not in out

        # The supplier's own secret, from a file: never echoed.
        given = tmp_path / "secret.txt"
        given.write_text(secret + "\n")
        upstream = as_json(
            shop,
            "upstreams",
            "set",
            "games",
            fake.base_url,
            "--secret-file",
            str(given),
            "--read-timeout-ms",
            "3000",
            key=key,
        )
        assert "secret" not in upstream and upstream["read_timeout_ms"] == 3000
        code, out, err = run(
            shop, "upstreams", "set", "games", fake.base_url, "--secret-file", "-", key=key, stdin=secret
        )
        assert code == 0 and secret not in out + err and "shown only now" not in err

        product = as_json(
            shop,
            "products",
            "create",
            "--name",
            "Genshin 6480",
            "--price",
            "648.00",
            "--delivery",
            "topup",
            "--upstream",
            "games",
            "--sku",
            "genshin-6480",
            "--buyer-input",
            str(fields_file),
            key=key,
        )
        assert product["topup"] == {"upstream": "games", "sku": "genshin-6480"}
        code, out, _ = run(shop, "products", "show", product["id"], key=key)
        assert "topup: upstream games, SKU genshin-6480" in out
        order = paid(shop, product["id"])
        shop.wait_for(order, "DELIVERED", deadline=30)
        assert fake.applied(order["order_id"]) == 1  # signed with the secret the file gave

        for _ in range(2):  # safe to run again
            assert as_json(shop, "upstreams", "delete", "games", key=key) == {
                "name": "games",
                "deleted": True,
            }
        code, _, err = run(shop, "upstreams", "show", "games", key=key)
        assert code == 1 and "upstream_not_found" in err
        # A top-up product naming an upstream not registered is made, and the merchant told so.
        code, _, err = run(
            shop,
            "products",
            "create",
            "--name",
            "Orphan",
            "--price",
            "1.00",
            "--delivery",
            "topup",
            "--upstream",
            "games",
            "--sku",
            "x",
            "--buyer-input",
            str(fields_file),
            key=key,
        )
        assert code == 0 and "no upstream 'games' is registered" in err


def test_a_change_to_terms_of_another_delivery_is_refused_after_one_read(shop, key):
    product = as_json(shop, "products", "create", "--name", "Codes", "--price", "5.00", key=key)
    code, out, err = run(shop, "products", "change", product["id"], "--sku", "x", key=key)
    assert (code, out) == (
        2,
        "",
    ) and f"--upstream and --sku are for a topup product; {product['id']} is delivered by stock" in err
    assert as_json(shop, "products", "show", product["id"], key=key)["topup"] is None


BAD_FIELDS = {
    "not_json.json": "[{",
    "not_list.json": json.dumps({"name": "uid"}),
    "no_en.json": json.dumps([{"name": "uid", "label": {"zh-CN": "UID"}}]),
    "twice.json": json.dumps([FIELDS[0], FIELDS[0]]),
    "codes.txt": "CODE-1\n\nCODE-2\n",
    "secret.txt": "a secret with spaces in it, long enough to be one\n",
}
CREATE = ("products", "create", "--name", "x", "--price", "1.00")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            (*CREATE, "--delivery", "topup", "--upstream", "u"),
            "--delivery topup needs --upstream NAME and --sku SKU",
        ),
        (
            (*CREATE, "--delivery", "topup", "--upstream", "u", "--sku", "s"),
            "--delivery topup needs --buyer-input FILE",
        ),
        ((*CREATE, "--upstream", "u", "--sku", "s"), "--upstream and --sku go with --delivery topup"),
        ((*CREATE, "--delivery", "manual", "--sku", "s"), "--upstream and --sku go with --delivery topup"),
        (
            (*CREATE, "--promise-minutes", "30"),
            "--promise-minutes and --deadline-minutes go with --delivery manual",
        ),
        (
            (*CREATE, "--delivery", "manual", "--promise-minutes", "60", "--deadline-minutes", "30"),
            "--deadline-minutes (30) must not be shorter than --promise-minutes (60)",
        ),
        ((*CREATE, "--delivery", "manual", "--promise-minutes", "0"), "--promise-minutes: must be 1 or more"),
        ((*CREATE, "--delivery", "post"), "--delivery: invalid choice"),
        ((*CREATE, "--buyer-input", "FILE:not_json.json"), "not_json.json is not JSON"),
        ((*CREATE, "--buyer-input", "FILE:not_list.json"), "must hold a JSON list of fields"),
        (
            (*CREATE, "--buyer-input", "FILE:no_en.json"),
            "no_en.json: field 1 (uid): label: Value error, label needs both",
        ),
        (
            (*CREATE, "--buyer-input", "FILE:twice.json"),
            "twice.json: buyer_input: field names must be unique",
        ),
        ((*CREATE, "--buyer-input", "FILE:missing.json"), "cannot read"),
        (("products", "change", "prd_x", "--delivery", "manual"), "a product's delivery never changes"),
        (
            ("products", "change", "prd_x", "--deadline-minutes", "5", "--promise-minutes", "9"),
            "must not be shorter",
        ),
        (
            ("orders", "fulfil", "ord_x"),
            "give what the buyer gets: --text, --text-file, --code or --codes-file",
        ),
        (
            ("orders", "fulfil", "ord_x", "--text", "a", "--text-file", "f"),
            "not allowed with argument --text",
        ),
        (("orders", "fulfil", "ord_x", "--text", "  "), "the text is empty"),
        (("orders", "fulfil", "ord_x", "--codes-file", "FILE:codes.txt"), "codes.txt line 2 is blank"),
        (
            ("orders", "fulfil", "ord_x", "--text-file", "-", "--codes-file", "-"),
            "only one of --text-file and --codes-file",
        ),
        (("upstreams", "set", "u"), "the following arguments are required: URL"),
        (
            ("upstreams", "set", "u", "https://up.example", "--secret-file", "FILE:secret.txt"),
            "a secret is one line",
        ),
        (("upstreams", "set", "u", "https://up.example", "--read-timeout-ms", "0"), "--read-timeout-ms"),
    ],
)
def test_bad_combinations_are_refused_in_one_line_before_anything_is_sent(
    shop, tmp_path, monkeypatch, argv, message
):
    for name, content in BAD_FIELDS.items():
        (tmp_path / name).write_text(content)
    sent = []
    monkeypatch.setattr(cli.Api, "send", lambda self, method, path, **kwargs: sent.append(path))
    argv = [str(tmp_path / part.removeprefix("FILE:")) if part.startswith("FILE:") else part for part in argv]

    code, out, err = run(shop, *argv, key=shop.merchant_key)

    assert (code, out, sent) == (2, "", []), err
    assert message in err and len(err.splitlines()) == 1, err
    assert "spaces in it" not in err  # a secret is never said back
