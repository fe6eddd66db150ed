"""`miaofa-merchant` against the local runtime: a large import with a progress bar and the right
counts, resuming after an interruption, export to a file, and clear refusals with exit codes.

The large import here is 20,000 codes (about 20 s on this machine); 100,000 (about 100 s) is bench/import.py's, which reports codes/s in BENCHMARKS.md."""

import csv
import hashlib
import hmac
import io
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.merchant import cli
from tests.support import drop_partitions, new_codes, poll

pytestmark = pytest.mark.e2e
LARGE = 20_000


def run(shop, *argv, key=None):
    """(exit code, stdout, stderr) of one command, as a merchant would run it."""
    console = cli.Console(out=io.StringIO(), err=io.StringIO(), environ={}, tty=False, sleep=lambda _: None)
    code = cli.main([*argv, "--url", shop.url, "--key", key or shop.merchant_key], console=console)
    return code, console.out.getvalue(), console.err.getvalue()


def test_an_interrupted_import_resumes_when_the_same_command_runs_again(shop, tmp_path, monkeypatch):
    product_id = shop.new_product([])
    codes = new_codes(50, prefix="CLI-RESUME")
    file = tmp_path / "codes.txt"
    file.write_text("\n".join(codes) + "\n")
    real, posts = cli.Api.send, []

    def interrupted_at_the_third_chunk(self, method, path, **kwargs):
        if method == "POST":
            posts.append(kwargs["headers"]["Import-Chunk"])
            if len(posts) == 3:
                raise KeyboardInterrupt
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(cli.Api, "send", interrupted_at_the_third_chunk)
    code, _, err = run(shop, "stock", "import", str(file), "--product", product_id, "--chunk", "10")
    assert code == 130 and "stopped after 2 of 5 chunks (20 lines)" in err
    assert "run the same command again to resume" in err
    assert shop.stock(product_id)["imported"] == 20

    monkeypatch.setattr(cli.Api, "send", real)
    code, out, _ = run(shop, "stock", "import", str(file), "--product", product_id, "--chunk", "10", "--json")

    summary = json.loads(out)
    assert code == 0 and (summary["added"], summary["duplicates"], summary["replayed_chunks"]) == (50, 0, 2)
    assert shop.stock(product_id)["imported"] == 50


def test_a_chunk_the_api_could_not_take_is_sent_again(shop, tmp_path, monkeypatch):
    product_id = shop.new_product([])
    file = tmp_path / "codes.txt"
    file.write_text("\n".join(new_codes(4)) + "\n")
    real, failed = cli.Api.send, []

    def busy_once(self, method, path, **kwargs):
        if method == "POST" and not failed:
            failed.append(path)
            return cli.Reply(409, {}, b'{"error": {"code": "import_in_progress", "message": "busy"}}')
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(cli.Api, "send", busy_once)
    code, out, err = run(shop, "stock", "import", str(file), "--product", product_id, "--json")

    assert code == 0 and json.loads(out)["added"] == 4
    assert "409 import_in_progress; trying again" in err


def test_on_a_terminal_the_bar_moves_while_a_chunk_is_on_its_way(shop, tmp_path, monkeypatch):
    product_id = shop.new_product([])
    file = tmp_path / "codes.txt"
    file.write_text("\n".join(new_codes(30, prefix="CLI-TICK")) + "\n")
    console = cli.Console(out=io.StringIO(), err=io.StringIO(), environ={}, tty=True, sleep=lambda _: None)
    real = cli.Api.send

    def slow_second_chunk(self, method, path, **kwargs):
        if method == "POST" and kwargs["headers"]["Import-Chunk"] == "1":
            # The answer takes as long as the bar needs to be redrawn twice on its own (a slow API).
            poll(lambda: console.err.getvalue().count("chunk 2/3") >= 2, deadline=10)
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(cli.Api, "send", slow_second_chunk)
    argv = ["stock", "import", str(file), "--product", product_id, "--chunk", "10", "--url", shop.url]
    code = cli.main([*argv, "--key", shop.merchant_key], console=console)

    assert code == 0, console.err.getvalue()
    redrawn = [d for d in console.err.getvalue().split("\r") if "chunk 2/3" in d]
    assert len(redrawn) >= 2 and all("≈" in d for d in redrawn[:2])  # estimates, said to be
    assert "100%  30/30 lines" in console.err.getvalue()


def test_export_writes_the_available_codes_to_a_private_file(shop, tmp_path):
    codes = new_codes(6, prefix="CLI-EXPORT")
    product_id = shop.new_product(codes)
    target = tmp_path / "unsold.txt"

    code, out, err = run(shop, "stock", "export", "--product", product_id, "-o", str(target))

    assert code == 0 and out == "" and "exported 6 available codes" in err
    assert sorted(target.read_text().splitlines()) == sorted(codes)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["unsold.txt"]  # no temporary file left behind
    code, out, _ = run(shop, "stock", "export", "--product", product_id)
    assert code == 0 and sorted(out.splitlines()) == sorted(codes)


@pytest.mark.parametrize("large_product", [{"sales_per_code": 2000}], indirect=True)
def test_an_import_of_reusable_codes_sends_chunks_the_api_takes(shop, tmp_path, large_product):
    """Each code of this product fills 2,000 slots and a request fills at most 10,000: 5 codes a chunk."""
    product_id = large_product
    codes = new_codes(6, prefix="CLI-REUSE")
    file = tmp_path / "codes.txt"
    file.write_text("\n".join(codes) + "\n")

    code, out, err = run(
        shop, "stock", "import", str(file), "--product", product_id, "--chunk", "10", "--json"
    )

    assert code == 0, err
    assert "each code is sold 2,000 times: chunks of 5 codes" in err
    assert (json.loads(out)["added"], json.loads(out)["chunks"]) == (6, 2)
    assert shop.stock(product_id)["imported"] == 12_000


def test_products_list_shows_the_merchants_products(shop):
    product_id = shop.new_product([])
    code, out, err = run(shop, "products", "list", "--json")
    assert code == 0, err
    assert product_id in {product["id"] for product in json.loads(out)}


def test_bad_input_and_refusals_are_clear_and_exit_non_zero(shop, tmp_path):
    product_id = shop.new_product([])
    good = tmp_path / "codes.txt"
    good.write_text("CLI-REFUSED-1\n")
    binary = tmp_path / "codes.bin"
    binary.write_bytes(b"OK-1\n\xff\xfe\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (("stock", "import", str(good), "--product", "prd_" + "0" * 20), 1, "product_not_found"),
        (("stock", "import", str(good), "--product", product_id), 1, "refused the merchant key", "mk_test_x"),
        (("stock", "import", str(binary), "--product", product_id), 2, "is not UTF-8 text (line 2"),
        (("stock", "import", str(empty), "--product", product_id), 2, "holds no lines"),
        (("stock", "import", str(tmp_path / "nope"), "--product", product_id), 2, "cannot read"),
        (("stock", "import", str(good), "--product", product_id, "--chunk", "10001"), 2, "--chunk"),
        (("stock", "import", str(good), "--product", product_id, "--import-id", "a b"), 2, "--import-id"),
        (("stock", "levels"), 2, "--product"),
    ]
    for argv, expected, message, *key in cases:
        code, out, err = run(shop, *argv, key=key[0] if key else None)
        assert (code, out) == (expected, ""), (argv, err)
        assert message in err, (argv, err)
    assert shop.stock(product_id)["imported"] == 0

    console = cli.Console(out=io.StringIO(), err=io.StringIO(), environ={})
    nowhere = ["stock", "levels", "--product", product_id, "--local-file", str(tmp_path / "none.json")]
    assert cli.main(nowhere, console=console) == 2 and "pass --url and --key" in console.err.getvalue()
    plain = ["stock", "levels", "--product", product_id, "--url", "http://shop.example.com", "--key", "mk_x"]
    assert cli.main(plain, console=console) == 2 and "over plain http" in console.err.getvalue()


@pytest.fixture
def large_product(shop, request):
    """A product (fields from an indirect parameter) whose stock is deleted afterwards: 40,000 items
    left behind would slow every later test on this worker that reads whole tables (the fuzz tests'
    snapshots)."""
    product_id = shop.new_product([], **getattr(request, "param", {}))
    yield product_id
    from shared.settings import settings

    partitions = [f"{product_id}#slots#{k}" for k in range(4)] + [f"{product_id}#fingerprints"]
    drop_partitions(settings().stock_table, partitions)


def test_a_large_import_shows_progress_and_counts_right_and_runs_again_as_a_no_op(
    shop, tmp_path, large_product
):
    product_id = large_product
    codes = new_codes(LARGE - 2, prefix="CLI-BIG")
    lines = codes[:7000] + [""] + codes[7000:] + [codes[10]]  # a blank line 7001, a duplicate last line
    file = tmp_path / "codes.txt"
    file.write_text("\r\n".join(lines) + "\r\n")

    code, out, err = run(shop, "stock", "import", str(file), "--product", product_id)

    assert code == 0, err
    assert (
        "added           19,998" in out
        and "duplicates           1" in out
        and "rejected             1" in out
    )
    assert "line 7,001: blank line" in out and f"line {LARGE:,}: duplicate" in out
    progress = [line for line in err.splitlines() if line.startswith("importing ")]
    assert len(progress) == 1 + 4 and "100%" in progress[-1] and f"{LARGE:,}/{LARGE:,} lines" in progress[-1]
    assert "CLI-BIG" not in out + err  # no code is ever printed
    code, levels, _ = run(shop, "stock", "levels", "--product", product_id, "--json")
    assert code == 0
    assert json.loads(levels) == {
        "available": LARGE - 2,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
        "imported": LARGE - 2,
    }

    code, again, _ = run(shop, "stock", "import", str(file), "--product", product_id, "--no-progress")
    assert code == 0 and "4 of 4 chunks were imported before under this import id" in again
    assert again.splitlines()[1:4] == out.splitlines()[1:4]  # the same counts: the first answers


# ---------- products, stock removal, orders and the webhook: every command over the local runtime


@pytest.fixture
def new_merchant(runtime):
    """A merchant of its own (its orders and webhook are this test's alone): its API key."""
    from shared.adapters import merchants

    _, key = merchants().create_merchant("CLI merchant")
    return key


def as_json(shop, *argv, key=None):
    code, out, err = run(shop, *argv, "--json", key=key)
    assert code == 0, (argv, err)
    return json.loads(out)


def test_products_show_change_and_deactivate(shop, new_merchant):
    key = new_merchant
    product = as_json(shop, "products", "create", "--name", "Gift card", "--price", "35.00", key=key)
    product_id = product["id"]

    shown = as_json(shop, "products", "show", product_id, key=key)
    assert (shown["name"], shown["price"], shown["active"]) == (
        "Gift card",
        {"amount": 3500, "currency": "CNY"},
        True,
    )
    changed = as_json(
        shop,
        "products",
        "change",
        product_id,
        "--price",
        "32.50",
        "--tiers",
        "3:30.00,10:28.00",
        "--max-per-order",
        "20",
        "--daily-limit",
        "5",
        "--instructions",
        "Redeem at example.com",
        key=key,
    )
    assert changed["price"] == {"amount": 3250, "currency": "CNY"}  # the product's own currency
    assert changed["price_tiers"] == [
        {"min_quantity": 3, "price": {"amount": 3000, "currency": "CNY"}},
        {"min_quantity": 10, "price": {"amount": 2800, "currency": "CNY"}},
    ]
    assert (changed["max_per_order"], changed["daily_limit_per_buyer"]) == (20, 5)
    code, out, err = run(shop, "products", "change", product_id, "--daily-limit", "none", key=key)
    assert code == 0 and "daily_limit_per_buyer    -" in out, err

    # A change that breaks a rule writes nothing, and says why.
    code, out, err = run(shop, "products", "change", product_id, "--min-per-order", "30", key=key)
    assert (code, out) == (1, "") and "validation_error" in err
    assert as_json(shop, "products", "show", product_id, key=key)["min_per_order"] == 1
    code, _, err = run(shop, "products", "change", product_id, key=key)
    assert code == 2 and "give at least one field" in err

    for _ in range(2):  # safe to run again
        assert as_json(shop, "products", "deactivate", product_id, key=key)["active"] is False
    inactive = as_json(shop, "products", "list", "--active", "no", key=key)
    assert [p["id"] for p in inactive] == [product_id]
    assert as_json(shop, "products", "list", "--active", "yes", key=key) == []
    assert shop.checkout(product_id).status_code in (404, 409, 422)  # no longer on sale


def test_stock_remove_takes_what_is_still_for_sale_and_names_the_other_lines(shop, new_merchant, tmp_path):
    key = new_merchant
    codes = new_codes(3, prefix="CLI-REMOVE")
    product_id = shop.new_product(codes, key=key)
    order = shop.buy(product_id)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    (sold,) = [
        i["code"] for i in as_json(shop, "orders", "show", order["order_id"], "--codes", key=key)["items"]
    ]
    unsold = [c for c in codes if c != sold]
    file = tmp_path / "remove.txt"
    file.write_text(f"{sold}\n{unsold[0]}\nCLI-REMOVE-NOT-THERE\n{unsold[1]}\n")

    code, out, err = run(shop, "stock", "remove", str(file), "--product", product_id, key=key)

    assert code == 0, err
    assert "removed 2 codes" in out and "1 reserved or sold: kept: lines 1" in out
    assert "1 not in stock (or blank): lines 3" in out
    assert "CLI-REMOVE" not in out + err
    levels = shop.stock(product_id, key=key)
    assert (levels["available"], levels["sold"], levels["imported"]) == (0, 1, 1)
    # Run again (as after a lost answer): nothing more goes, the removed codes are now not found.
    again = as_json(shop, "stock", "remove", str(file), "--product", product_id, key=key)
    assert again == {"removed": 0, "not_found": [2, 3, 4], "not_available": [1]}


def test_orders_list_page_by_page_show_export_and_refund(shop, new_merchant, tmp_path):
    key = new_merchant
    codes = new_codes(2, prefix="CLI-ORDERS")
    product_id = shop.new_product(codes, key=key)
    orders = []
    for email in ("first@example.com", "=2+2@example.com"):  # a valid address, and a formula
        response = shop.checkout(product_id, email=email)
        assert response.status_code == 201, response.text
        orders.append(response.json())
        assert shop.runtime.sandbox.pay(orders[-1]["order_id"], orders[-1]["total"]["amount"], "CNY")
        shop.wait_for(orders[-1], "DELIVERED")
    newest_first = [orders[1]["order_id"], orders[0]["order_id"]]

    pages, cursor = [], None
    while True:
        page = as_json(
            shop, "orders", "list", "--limit", "1", *(["--cursor", cursor] if cursor else []), key=key
        )
        pages += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == newest_first
    assert [
        o["order_id"] for o in as_json(shop, "orders", "list", "--all", key=key)["orders"]
    ] == newest_first
    code, out, err = run(shop, "orders", "list", "--limit", "1", key=key)
    assert code == 0 and orders[1]["order_id"] in out and "more follow: --cursor" in err
    filtered = as_json(
        shop, "orders", "list", "--email", "FIRST@example.com", "--status", "delivered", key=key
    )
    assert [o["order_id"] for o in filtered["orders"]] == [orders[0]["order_id"]]

    code, out, err = run(shop, "orders", "show", orders[0]["order_id"], key=key)
    assert code == 0 and "DELIVERED" in out and "codes     1 (--codes prints them" in out
    assert "CLI-ORDERS" not in out + err
    code, out, _ = run(shop, "orders", "show", orders[0]["order_id"], "--codes", key=key)
    assert code == 0 and any(c in out for c in codes)

    target = tmp_path / "orders.csv"
    summary = as_json(shop, "orders", "export", "-o", str(target), key=key)
    assert summary == {"orders": 2, "file": str(target)}
    rows = list(csv.DictReader(target.open(newline="")))
    assert [r["order_id"] for r in rows] == newest_first
    assert (rows[1]["email"], rows[1]["total"], rows[1]["currency"], rows[1]["status"]) == (
        "first@example.com",
        "19.99",
        "CNY",
        "DELIVERED",
    )
    assert rows[0]["email"] == "'=2+2@example.com"  # a spreadsheet shows it, does not run it
    assert "CLI-ORDERS" not in target.read_text()  # the listing has no codes, so neither has the CSV
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    code, _, err = run(shop, "orders", "export", "--json", key=key)
    assert code == 2 and "--json needs -o FILE" in err

    refunded = as_json(shop, "orders", "refund", orders[0]["order_id"], "--reason", "asked", key=key)
    assert refunded["status"] in ("REFUNDING", "REFUNDED")
    again = as_json(shop, "orders", "refund", orders[0]["order_id"], key=key)  # safe to run again
    assert again["refund_id"] == refunded["refund_id"]
    code, _, err = run(shop, "orders", "show", "ord_" + "0" * 20, key=key)
    assert code == 1 and "order_not_found" in err


class Hooks:
    """A merchant's webhook receiver on 127.0.0.1: records each POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hooks.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hooks():
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()


def test_webhooks_set_show_test_and_delete(shop, new_merchant, hooks, monkeypatch):
    key = new_merchant
    code, out, err = run(shop, "webhooks", "set", hooks.url, "--events", "order.paid,stock.low", key=key)
    assert code == 0, err
    secret = out.split("secret", 1)[1].split()[0]
    assert secret.startswith("whsec_") and "shown only now" in err
    shown = as_json(shop, "webhooks", "show", key=key)
    assert shown == {"url": hooks.url, "events": ["order.paid", "stock.low"]}
    code, out, _ = run(shop, "webhooks", "show", key=key)
    assert code == 0 and secret not in out

    queued = as_json(shop, "webhooks", "test", key=key)
    assert queued["type"] == "webhook.test"
    headers, body = poll(lambda: hooks.received and hooks.received[0])
    timestamp, signed = (part.split("=", 1)[1] for part in headers["miaofa-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed, expected)
    assert json.loads(body)["event_id"] == queued["event_id"] == headers["miaofa-event-id"]

    # Not safe to send again (each is a new event): a lost answer is reported, never retried.
    real, sent = cli.Api.send, []

    def unavailable(self, method, path, **kwargs):
        if path == "/merchant/webhook/test":
            sent.append(path)
            return cli.Reply(503, {}, b'{"error": {"code": "busy", "message": "try again"}}')
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(cli.Api, "send", unavailable)
    code, _, err = run(shop, "webhooks", "test", key=key)
    assert (code, len(sent)) == (1, 1) and "not sent again, as it may have been done" in err
    monkeypatch.setattr(cli.Api, "send", real)

    for _ in range(2):  # safe to run again
        assert as_json(shop, "webhooks", "delete", key=key) == {"deleted": True}
    code, _, err = run(shop, "webhooks", "show", key=key)
    assert code == 1 and "webhook_not_found" in err
    code, _, err = run(shop, "webhooks", "test", key=key)
    assert code == 1 and "webhook_not_found" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("products", "change", "prd_x", "--active", "maybe"), "yes or no"),
        (("products", "change", "prd_x", "--tiers", "3=30"), "--tiers takes QUANTITY:PRICE"),
        (("products", "create", "--name", "x", "--price", "1.234"), "price '1.234'"),
        (("orders", "list", "--from", "yesterday"), "not a time"),
        (("orders", "list", "--from", "2026-05-01T08:00:00"), "has no offset"),
        (("orders", "list", "--limit", "0"), "--limit"),
        (("orders", "list", "--status", "LOST"), "--status"),
        (("webhooks", "set", "https://example.com/h", "--events", "order.lost"), "events are order.paid"),
        (("stock", "remove", "/nonexistent/codes.txt", "--product", "prd_x"), "cannot read"),
    ],
)
def test_usage_errors_name_the_problem_and_change_nothing(shop, argv, message):
    code, out, err = run(shop, *argv)
    assert (code, out) == (2, ""), err
    assert message in err and "Traceback" not in err


def test_shop_set_refuses_to_undo_a_change_made_since_it_read_and_says_how_to_retry(shop, monkeypatch):
    """Someone changes the settings between `shop set`'s read and its write: nothing is written, the
    merchant is told so with the command to run again; run again, both changes hold. `--force` writes
    over the other change."""
    from shared.adapters import merchants

    _, key = merchants().create_merchant("CLI shop")
    real = cli.Api.send

    def someone_else_changes_the_announcement_first(self, method, path, **kwargs):
        if method == "PUT":
            current = shop.merchant("GET", "/merchant/shop", key=key).json()
            theirs = {**current, "announcement": f"theirs {current['version']}"}
            del theirs["merchant_id"]
            assert shop.merchant("PUT", "/merchant/shop", key=key, json=theirs).status_code == 200
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(cli.Api, "send", someone_else_changes_the_announcement_first)
    code, out, err = run(shop, "shop", "set", "--contact", "QQ 42", key=key)

    assert code == 1 and out == ""
    assert "someone else changed them after they were read" in err
    assert "miaofa-merchant shop set --contact 'QQ 42'" in err and "--force" in err
    settings = shop.merchant("GET", "/merchant/shop", key=key).json()
    assert (settings["contact"], settings["announcement"], settings["version"]) == (None, "theirs 0", 1)

    monkeypatch.setattr(cli.Api, "send", real)
    code, out, _ = run(shop, "shop", "set", "--contact", "QQ 42", "--json", key=key)
    assert code == 0
    assert json.loads(out) | {"merchant_id": None} == settings | {
        "merchant_id": None,
        "contact": "QQ 42",
        "version": 2,
    }

    monkeypatch.setattr(cli.Api, "send", someone_else_changes_the_announcement_first)
    code, out, _ = run(shop, "shop", "set", "--contact", "QQ 43", "--force", "--json", key=key)
    forced = json.loads(out)
    assert code == 0 and forced["version"] == 4  # theirs was 3
    assert (forced["contact"], forced["announcement"]) == ("QQ 43", "theirs 0")  # theirs undone


def test_stock_levels_of_a_generated_product_show_its_cap_made_and_left(shop):
    from tests.integration.test_generated import generated_product

    product_id = generated_product(shop, "GIFT-XXXX-XXXX-XXXX", cap=4)
    order = shop.buy(product_id, 3)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    code, out, _ = run(shop, "stock", "levels", "--product", product_id)
    assert code == 0
    assert out.splitlines() == [f"{'cap':<10} {4:>10}", f"{'made':<10} {3:>10}", f"{'left':<10} {1:>10}"]
    uncapped = shop.merchant(
        "PATCH",
        f"/merchant/products/{product_id}",
        json={"generated": {"pattern": "GIFT-XXXX-XXXX-XXXX"}},
    )
    assert uncapped.status_code == 200, uncapped.text
    code, out, _ = run(shop, "stock", "levels", "--product", product_id)
    assert (code, out.strip()) == (0, "codes are made per order, without a cap: never sold out")
