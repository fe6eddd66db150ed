"""The import rules of docs/architecture.md, read from the source: `shared/` imports nothing above it
(no function, no local runtime or CLI), and a function imports no other function's code — except the
OpenAPI function, which reads the other functions' route tables (their `handler` modules) to write
the one document."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABOVE_SHARED = ("functions", "infra", "bench", "tests")


def imported(source: str) -> set[str]:
    """Every module a source imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def broken_rules(path: str, source: str) -> list[str]:
    """The rules `source`, at `path` (relative to the repository), breaks."""
    parts = Path(path).with_suffix("").parts
    broken = []
    for name in sorted(imported(source)):
        top = name.split(".")
        if parts[0] == "shared" and top[0] in ABOVE_SHARED:
            broken.append(f"{path}: shared/ imports {name}")
        if parts[0] == "functions" and top[0] == "functions" and len(top) > 1 and top[1] != parts[1]:
            reads_routes = parts[1] == "openapi" and top[2:] == ["handler"]
            if not reads_routes:
                broken.append(f"{path}: function {parts[1]} imports {name}")
    return broken


def sources() -> list[Path]:
    return sorted(p for package in ("shared", "functions") for p in (ROOT / package).rglob("*.py"))


def test_shared_imports_nothing_above_it_and_no_function_imports_another():
    assert sources()
    broken = [rule for p in sources() for rule in broken_rules(str(p.relative_to(ROOT)), p.read_text())]
    assert broken == []


@pytest.mark.parametrize(
    ("path", "source", "broken"),
    [
        ("shared/refunds.py", "from functions.webhook.handler import app", True),
        ("shared/store/stock.py", "def f():\n    import infra.local.runtime", True),
        ("shared/orders.py", "from shared.money import Money", False),
        ("functions/reconcile/run.py", "from functions.webhook.payment import apply_payment", True),
        ("functions/reconcile/run.py", "from functions.reconcile.expiry import expire_reservations", False),
        ("functions/openapi/handler.py", "from functions.merchant.handler import app", False),
        ("functions/openapi/handler.py", "from functions.merchant.catalog import create_product", True),
    ],
)
def test_the_rules_catch_what_they_name(path, source, broken):
    assert bool(broken_rules(path, source)) is broken
