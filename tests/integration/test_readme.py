"""The README's curl examples, run as written against the local runtime: every ```sh block that calls
curl on localhost:3000, with only the port changed, in a directory whose `.miaofa/local.json` holds a
fresh merchant's key (so the demo shop is left alone). A block that stops working fails here."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.adapters import merchants as merchant_store

README = Path(__file__).resolve().parents[2] / "README.md"
LOCAL = "localhost:3000"


def curl_blocks(text: str) -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [block for block in blocks if re.search(r"\bcurl\b", block) and LOCAL in block]


def answers(output: str) -> list[dict]:
    """Every JSON object curl printed (its answers follow each other with no separator)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := output.find("{", at)) != -1:
        value, at = decoder.raw_decode(output, at)
        found.append(value)
    return found


def test_the_parser_finds_the_blocks_to_run():
    text = "```sh\ncurl -s localhost:3000/x\n```\n```sh\nmake run\n```\n```\ncurl localhost:3000\n```\n"
    assert curl_blocks(text) == ["curl -s localhost:3000/x\n"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readmes_curl_examples_work_as_written(shop, tmp_path):
    blocks = curl_blocks(README.read_text())
    assert blocks, "the README has no curl example on localhost:3000 any more"
    merchant_id, key = merchant_store().create_merchant("README reader")
    (tmp_path / ".miaofa").mkdir()
    (tmp_path / ".miaofa" / "local.json").write_text(json.dumps({"url": shop.url, "merchant_key": key}))
    port = shop.url.rsplit(":", 1)[1]

    for block in blocks:
        script = block.replace(LOCAL, f"127.0.0.1:{port}")
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (block, done.stdout, done.stderr)
        printed = answers(done.stdout)
        assert printed and not [answer for answer in printed if "error" in answer], (block, done.stdout)

    # What the example did, read back: a product with its two codes, and the shop's settings.
    (product,) = shop.merchant("GET", "/merchant/products", key=key).json()["products"]
    assert product["name"] == "Steam 50" and product["max_per_order"] == 3
    assert shop.stock(product["id"], key=key)["available"] == 2
    settings = shop.merchant("GET", "/merchant/shop", key=key).json()
    assert settings["merchant_id"] == merchant_id and settings["name"] == "Neko Cards"
