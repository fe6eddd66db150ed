"""`miaofa-merchant` against the local runtime: a large import with a progress bar and the right
counts, resuming after an interruption, export to a file, and clear refusals with exit codes.

The large import here is 20,000 codes (about 20 s on this machine); 100,000 (about 100 s) is bench/import.py's, which reports codes/s in BENCHMARKS.md."""

import io
import json
import os
import stat

import pytest

from infra.merchant import cli
from tests.support import drop_partitions, new_codes

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
