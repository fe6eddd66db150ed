"""Docs that point at code point at code that is there: a module or test that moves takes its
citations along (README.md, BENCHMARKS.md, docs/)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
CITED = re.compile(r"\b(?:tests|shared|functions|infra|bench)/[\w/]+\.py\b")


def cited_paths() -> dict[str, list[str]]:
    cited: dict[str, list[str]] = {}
    for doc in DOCS:
        for path in CITED.findall(doc.read_text(encoding="utf-8")):
            cited.setdefault(path, []).append(doc.name)
    return cited


def test_docs_cite_files_that_exist():
    cited = cited_paths()
    assert len(cited) > 50  # the pattern still finds the docs' citations
    missing = {path: docs for path, docs in cited.items() if not (ROOT / path).is_file()}
    assert missing == {}
