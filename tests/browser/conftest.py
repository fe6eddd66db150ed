"""Playwright driving Debian's Chromium (/usr/bin/chromium, installed by `make test`) headless
against the local runtime. Screenshots go to test-artifacts/browser/; with MIAOFA_GALLERY set (e.g.
`MIAOFA_GALLERY=docs/screenshots`), the gallery's few (docs/gallery.md) are also written there, made
small (a 256-colour palette)."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MIAOFA_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# The screenshots docs/gallery.md shows, by the name the tests give them.
GALLERY = (
    "shop-zh-CN-desktop",
    "shop-zh-CN-360px",
    "product-total-en-360px",
    "qr-payment-zh-CN-desktop",
    "3-order-delivered",
    "error-out-of-stock-zh-CN-360px",
    "sandbox-pay-zh-360px",
)
# Collects what the page's Content-Security-Policy refused: a strict policy must refuse nothing of ours.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective));
"""


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        # In CI a missing browser fails; elsewhere (no root to install it, another OS) it skips, saying so.
        missing = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing + "; or set MIAOFA_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browse(chromium, shop):
    """browse(locale=..., width=...) -> a new page in a fresh context (its own storage)."""
    contexts = []

    def open_page(locale: str = "en-US", width: int = 1280, height: int = 900):
        context = chromium.new_context(
            locale=locale,
            viewport={"width": width, "height": height},
            accept_downloads=True,
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.add_init_script(WATCH_CSP)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def snap(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    gallery = os.environ.get("MIAOFA_GALLERY")
    if gallery and name in GALLERY:
        from PIL import Image

        folder = ROOT / gallery
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as image:
            small = image.convert("RGB").quantize(
                colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
            small.save(folder / f"{name}.png", optimize=True)
