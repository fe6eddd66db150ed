"""Stock at scale: resumable imports in chunks (each chunk once, whatever is sent again), removing
unsold codes (never reserved or sold ones), exporting unsold codes (owner only, audited).
The levels add up (I4) and reconcile's stock audit finds nothing after each step."""

import json
import logging
import threading
from datetime import timedelta

import pytest
import requests

from functions.merchant.stock import EXPORT_AUDIT
from functions.reconcile.audit import audit_stock
from shared.adapters import merchants as merchant_store
from shared.adapters import ops, orders, stock_changes, stock_upkeep
from shared.adapters import products as product_store
from shared.orders import utcnow
from shared.store.stock.changes import StockChanges
from shared.store.stock.items import NewCode
from shared.store.stock.removal import StockRemoval
from tests.support import expire_all, new_codes

AFTER_EXPIRY = timedelta(minutes=16)


@pytest.fixture(scope="module")
def merchant_b():
    return merchant_store().create_merchant("Merchant B")[1]


def send_chunk(shop, product_id, lines, import_id, chunk, first_line, key=None):
    return shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        key=key,
        data="".join(f"{line}\n" for line in lines).encode(),
        headers={
            "Content-Type": "text/plain",
            "Import-Id": import_id,
            "Import-Chunk": str(chunk),
            "Import-First-Line": str(first_line),
        },
    )


def levels(shop, product_id, shards=4):
    """The product's levels, checked: I4 holds, nothing negative, reconcile's audit finds nothing."""
    got = shop.stock(product_id)
    assert got["available"] + got["reserved"] + got["sold"] + got["returned"] == got["imported"], got
    assert min(got.values()) >= 0, got
    assert stock_upkeep().audit(product_id, shards) == []
    return got


def export(shop, product_id, key=None, limit=None):
    """Every code the export hands out, following its pages."""
    codes, cursor = [], None
    while True:
        params = {k: v for k, v in (("cursor", cursor), ("limit", limit)) if v is not None}
        response = shop.merchant(
            "GET", f"/merchant/products/{product_id}/stock/export", key=key, params=params
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        codes += response.text.splitlines()
        cursor = response.headers.get("next-cursor")
        if not cursor:
            return codes


def remove(shop, product_id, codes, key=None):
    return shop.merchant("DELETE", f"/merchant/products/{product_id}/stock", key=key, json={"codes": codes})


def buy_all(shop, product_id, quantity):
    order = shop.buy(product_id, quantity=quantity)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return [item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]]


# ---- resumable imports
def test_a_chunk_sent_again_gets_its_first_answer_and_adds_nothing(shop):
    product_id = shop.new_product([])
    codes = new_codes(10)
    first = send_chunk(shop, product_id, codes[:6], "resume-1", 0, 1)
    second = send_chunk(shop, product_id, codes[6:], "resume-1", 1, 7)
    assert first.json()["added"] == 6 and second.json()["added"] == 4
    assert levels(shop, product_id)["imported"] == 10

    again = send_chunk(shop, product_id, codes[:6], "resume-1", 0, 1)

    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["import-replayed"] == "true" and "import-replayed" not in first.headers
    assert levels(shop, product_id) == {
        "available": 10,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
        "imported": 10,
    }
    # The same codes under a new import id are an import of their own: duplicates of the stock.
    fresh = send_chunk(shop, product_id, codes[:6], "resume-2", 0, 1)
    assert (fresh.json()["added"], fresh.json()["duplicates"]) == (0, 6)


@pytest.mark.parametrize(
    ("lines", "first_line"),
    [(["OTHER-1", "OTHER-2"], 1), (None, 5)],  # another body; the same body said to start elsewhere
    ids=["another body", "another first line"],
)
def test_a_chunk_sent_again_with_another_body_is_refused_and_adds_nothing(shop, lines, first_line):
    product_id = shop.new_product([])
    codes = new_codes(3)
    assert send_chunk(shop, product_id, codes, "reused", 0, 1).json()["added"] == 3

    reused = send_chunk(shop, product_id, lines or codes, "reused", 0, first_line)

    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "import_chunk_reused")
    assert levels(shop, product_id)["imported"] == 3
    assert "OTHER-1" not in export(shop, product_id)


def test_duplicates_across_chunks_and_against_stock_carry_file_line_numbers(shop):
    product_id = shop.new_product(["ALREADY-IN-STOCK"])
    # The file: lines 1-3 in chunk 0, lines 4-8 in chunk 1.
    chunk0 = ["FILE-A", "FILE-B", "ALREADY-IN-STOCK"]
    chunk1 = ["FILE-C", "FILE-A", "", "FILE-D", "FILE-C"]

    first = send_chunk(shop, product_id, chunk0, "lines", 0, 1).json()
    second = send_chunk(shop, product_id, chunk1, "lines", 1, 4).json()

    assert first == {
        "added": 2,
        "duplicates": 1,
        "rejected": 0,
        "problems": [{"line": 3, "reason": "duplicate"}],
    }
    assert second == {
        "added": 2,
        "duplicates": 2,
        "rejected": 1,
        "problems": [
            {"line": 5, "reason": "duplicate"},  # FILE-A, line 1 of chunk 0
            {"line": 6, "reason": "blank line"},
            {"line": 8, "reason": "duplicate"},  # FILE-C, line 4 of the same chunk
        ],
    }
    assert sorted(export(shop, product_id)) == ["ALREADY-IN-STOCK", "FILE-A", "FILE-B", "FILE-C", "FILE-D"]
    assert levels(shop, product_id)["imported"] == 5


def test_a_chunk_whose_answer_was_lost_answers_the_same_when_sent_again(shop, monkeypatch):
    """The codes went in, then the process died before the chunk's answer was recorded."""
    product_id = shop.new_product([])
    codes = new_codes(5)
    real = StockChanges.record_chunk
    calls = []

    def dies_once(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("injected: crashed before the answer was recorded")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StockChanges, "record_chunk", dies_once)
    crashed = send_chunk(shop, product_id, codes + [""], "lost-answer", 0, 1)
    assert crashed.status_code == 500
    assert levels(shop, product_id)["imported"] == 5  # the codes are in

    again = send_chunk(shop, product_id, codes + [""], "lost-answer", 0, 1)

    assert again.status_code == 200 and "import-replayed" not in again.headers
    assert again.json() == {
        "added": 5,
        "duplicates": 0,
        "rejected": 1,
        "problems": [{"line": 6, "reason": "blank line"}],
    }
    assert levels(shop, product_id)["imported"] == 5
    assert (
        send_chunk(shop, product_id, codes + [""], "lost-answer", 0, 1).headers["import-replayed"] == "true"
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Import-Id": "x" * 65, "Import-Chunk": "0"}, "invalid_import_id"),
        ({"Import-Id": "has space", "Import-Chunk": "0"}, "invalid_import_id"),
        ({"Import-Id": "", "Import-Chunk": "0"}, "invalid_import_id"),
        ({"Import-Chunk": "0"}, "invalid_import_id"),
        ({"Import-Id": "ok"}, "invalid_import_chunk"),
        ({"Import-Id": "ok", "Import-Chunk": "-1"}, "invalid_import_chunk"),
        ({"Import-Id": "ok", "Import-Chunk": "1e3"}, "invalid_import_chunk"),
        ({"Import-Id": "ok", "Import-Chunk": "0", "Import-First-Line": "0"}, "invalid_import_first_line"),
        ({"Import-First-Line": "x"}, "invalid_import_first_line"),
    ],
)
def test_bad_import_headers_are_422_and_add_nothing(shop, headers, code):
    product_id = shop.new_product([])
    response = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data=b"HEADER-TEST-1\n",
        headers={"Content-Type": "text/plain", **headers},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)
    assert levels(shop, product_id)["imported"] == 0


def test_the_first_line_header_alone_numbers_the_problems(shop):
    product_id = shop.new_product([])
    response = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data=b"FIRST-LINE-1\n\n",
        headers={"Content-Type": "text/plain", "Import-First-Line": "1001"},
    )
    assert response.json()["problems"] == [{"line": 1002, "reason": "blank line"}]


# ---- removing unsold codes
def test_removing_codes_takes_only_available_ones_and_buyers_get_the_rest(shop):
    codes = new_codes(8, prefix="REMOVE")
    product_id = shop.new_product(codes, shards=2)
    shop.buy(product_id)  # reserves one code, unpaid
    sold = buy_all(shop, product_id, 1)
    available = export(shop, product_id)
    [reserved] = set(codes) - set(available) - set(sold)
    assert levels(shop, product_id, shards=2) == {
        "available": 6,
        "reserved": 1,
        "sold": 1,
        "returned": 0,
        "imported": 8,
    }
    going = [available[0], available[3], available[-1]]  # early, middle and last slots of the shards

    response = remove(
        shop, product_id, [going[0], sold[0], "NOT-IN-STOCK", going[1], reserved, "", going[2], going[0]]
    )

    assert response.status_code == 200
    assert response.json() == {"removed": 3, "not_found": [3, 6], "not_available": [2, 5]}
    kept = sorted(set(available) - set(going))
    assert sorted(export(shop, product_id)) == kept
    assert levels(shop, product_id, shards=2) == {
        "available": 3,
        "reserved": 1,
        "sold": 1,
        "returned": 0,
        "imported": 5,
    }
    # Removed codes are gone for good: not removable again, never sold, and importable anew.
    assert remove(shop, product_id, going).json() == {
        "removed": 0,
        "not_found": [1, 2, 3],
        "not_available": [],
    }
    assert sorted(buy_all(shop, product_id, 3)) == kept
    assert levels(shop, product_id, shards=2)["sold"] == 4
    again = shop.merchant("POST", f"/merchant/products/{product_id}/stock", json={"codes": going[:1]})
    assert again.json()["added"] == 1 and export(shop, product_id) == going[:1]
    assert levels(shop, product_id, shards=2)["available"] == 1


def test_a_returned_code_can_be_removed_where_it_lies(shop):
    codes = new_codes(2, prefix="POOLED")
    product_id = shop.new_product(codes, shards=1)
    shop.buy(product_id)
    [fresh] = export(shop, product_id)
    [pooled] = set(codes) - {fresh}
    expire_all(utcnow() + AFTER_EXPIRY)
    assert sorted(export(shop, product_id)) == sorted(codes)  # back in stock, in the returned pool

    assert remove(shop, product_id, [pooled]).json() == {"removed": 1, "not_found": [], "not_available": []}

    assert levels(shop, product_id, shards=1) == {
        "available": 1,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
        "imported": 1,
    }
    assert export(shop, product_id) == [fresh]
    assert buy_all(shop, product_id, 1) == [fresh]
    assert shop.checkout(product_id).status_code == 409


def test_a_removal_that_crashed_part_way_is_finished_by_the_next_import(shop, monkeypatch):
    codes = [f"CRASH-{n}" for n in range(6)]  # one shard: code n sits in slot n
    product_id = shop.new_product(codes, shards=1)
    real = StockRemoval._finish_removal
    calls = []

    def dies_once(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("injected: crashed after the shard shrank, before the codes moved")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StockRemoval, "_finish_removal", dies_once)
    assert remove(shop, product_id, ["CRASH-1"]).status_code == 500

    # Counted as removed already; the slot it held waits for its new code and is not handed out.
    halfway = shop.stock(product_id)
    assert halfway == {"available": 5, "reserved": 0, "sold": 0, "returned": 0, "imported": 5}
    assert stock_upkeep().audit(product_id, 1) == ["shard 0: 4 slots fenced by an unfinished stock removal"]

    assert send_chunk(shop, product_id, ["CRASH-6"], "after-crash", 0, 1).json()["added"] == 1

    assert len(calls) == 2  # the import finished the removal first
    assert sorted(export(shop, product_id)) == [
        "CRASH-0",
        "CRASH-2",
        "CRASH-3",
        "CRASH-4",
        "CRASH-5",
        "CRASH-6",
    ]
    assert levels(shop, product_id, shards=1)["available"] == 6


def test_removal_takes_at_most_10000_codes_and_removes_nothing_beyond(shop):
    product_id = shop.new_product(["LIMIT-1"])
    response = remove(shop, product_id, ["LIMIT-1"] + [f"X-{n}" for n in range(10_000)])
    assert (response.status_code, response.json()["error"]["code"]) == (422, "too_many_codes")
    assert levels(shop, product_id)["available"] == 1


# ---- exporting unsold codes
def test_export_is_the_owners_only_and_every_page_is_audited(shop, merchant_b, caplog, capfd):
    caplog.set_level(logging.INFO)
    codes = new_codes(5, prefix="EXPORT-CANARY")
    product_id = shop.new_product(codes)
    merchant_a = merchant_store().merchant_for_key(shop.merchant_key)
    before = ops().reports(EXPORT_AUDIT, limit=1000)

    theirs = shop.merchant("GET", f"/merchant/products/{product_id}/stock/export", key=merchant_b)
    missing = shop.merchant("GET", "/merchant/products/prd_" + "0" * 20 + "/stock/export", key=merchant_b)
    assert (theirs.status_code, theirs.json()) == (404, missing.json())
    assert theirs.json()["error"]["code"] == "product_not_found"
    assert ops().reports(EXPORT_AUDIT, limit=1000) == before  # refused: nothing handed out, nothing to audit

    assert sorted(export(shop, product_id, limit=2)) == sorted(codes)  # three pages: 2, 2, 1

    records = [r for r in ops().reports(EXPORT_AUDIT, limit=1000) if r not in before]
    assert sorted(r["count"] for r in records) == [1, 2, 2]
    assert {(r["merchant_id"], r["product_id"]) for r in records} == {(merchant_a, product_id)}
    assert all(r["at"] and r["request_id"] for r in records)
    out, err = capfd.readouterr()
    logs = "\n".join(repr(vars(record)) for record in caplog.records) + out + err
    assert "stock exported" in logs and "EXPORT-CANARY" not in logs
    assert "EXPORT-CANARY" not in json.dumps(records)


def test_a_forged_export_cursor_is_400(shop):
    product_id = shop.new_product(new_codes(1))
    for cursor in ("not-a-cursor", "eyJ4IjoxfQ"):  # the second is base64 of {"x":1}
        response = shop.merchant(
            "GET", f"/merchant/products/{product_id}/stock/export", params={"cursor": cursor}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor")
    response = shop.merchant("GET", f"/merchant/products/{product_id}/stock/export", params={"limit": "0"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_limit")


# ---- one code, one product: a merchant's products never share a code (docs/decisions.md)


def import_text(shop, product_id, codes, key=None):
    response = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        key=key,
        data="\n".join(codes).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_code_in_one_product_is_a_duplicate_in_another_of_the_same_merchant(shop, merchant_b):
    shared, own = new_codes(2)
    first = shop.new_product([shared])
    second = shop.new_product([])
    answer = import_text(shop, second, [own, shared])
    assert (answer["added"], answer["problems"]) == (1, [{"line": 2, "reason": "duplicate"}])
    assert shop.stock(second)["imported"] == 1
    other_merchant = shop.new_product([], key=merchant_b)
    assert import_text(shop, other_merchant, [shared], key=merchant_b)["added"] == 1  # not theirs to share

    # Once sold it stays the first product's; once removed unsold, another product may take it.
    removed = remove(shop, first, [shared])
    assert removed.status_code == 200 and removed.json()["removed"] == 1, removed.text
    assert import_text(shop, second, [shared])["added"] == 1


def test_two_products_importing_one_code_at_once_get_it_once(shop):
    code = new_codes(1)[0]
    products = [shop.new_product([]) for _ in range(4)]
    answers: list[dict] = []

    def load(product_id):
        answers.append(import_text(shop, product_id, [code]))

    threads = [threading.Thread(target=load, args=(p,)) for p in products]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["added"] for a in answers) == [0, 0, 0, 1]
    assert sum(shop.stock(p)["imported"] for p in products) == 1


def test_a_removal_racing_multi_shard_claims_never_sells_a_removed_code(shop):
    """Removal fences the slots it moves codes into, and every claim is conditional: a code is either
    removed or sold, never both, and the stock audit finds the slots where they belong."""
    codes = new_codes(8)
    product_id = shop.new_product(codes, shards=4, max_per_order=3)  # 2 a shard: orders of 3 take pieces
    start = threading.Barrier(4)
    removal: list[dict] = []
    placed: list[dict] = []

    def take_out():
        start.wait()
        # The store's removal itself (the merchant route's handler is not what races here).
        merchant = product_store().product(product_id).merchant_id
        found = stock_changes().remove_codes(
            product_id,
            4,
            [NewCode(line=n + 1, code=c) for n, c in enumerate(codes[:4])],
            merchant_store().cipher(merchant),
        )
        removal.append(
            {"removed": len(found.removed), **found.model_dump(include={"not_found", "not_available"})}
        )

    def order():
        start.wait()
        body = {"product_id": product_id, "quantity": 3, "email": "race@example.com"}
        response = requests.post(f"{shop.url}/api/orders", json=body, timeout=30)
        assert response.status_code in (201, 409), response.text
        if response.status_code == 201:
            placed.append(response.json())

    threads = [threading.Thread(target=take_out)] + [threading.Thread(target=order) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sold: list[str] = []
    for each in placed:
        assert shop.runtime.sandbox.pay(each["order_id"], each["total"]["amount"], "CNY")
        sold += [item["code"] for item in shop.wait_for(each, "DELIVERED")["items"]]
    (answer,) = removal
    kept = {codes[line - 1] for line in answer["not_available"] + answer["not_found"]}
    gone = set(codes[:4]) - kept
    assert len(gone) == answer["removed"] and not gone & set(sold)
    assert len(sold) == len(set(sold))
    got = levels(shop, product_id)
    assert got["imported"] == 8 - len(gone) and got["sold"] == len(sold)
    later = utcnow() + timedelta(minutes=20)
    assert audit_stock(product_store(), stock_upkeep(), orders(), [product_id], later) == {}
