"""The locks pin what pyproject.toml asks for; `sam build` installs the runtime lock."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?: --hash=sha256:[0-9a-f]{64})+$")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, continuations joined, comments dropped."""
    text = re.sub(r"\s*\\\n\s*", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pins(lock: str) -> dict[str, str]:
    """Every package a lock names, with its version; each line must be an exact pin with hashes."""
    pinned: dict[str, str] = {}
    for line in requirement_lines(ROOT / "requirements" / lock):
        match = PIN.match(line)
        assert match, f"{lock}: not an exact pin with hashes: {line[:80]}"
        pinned[canonicalize_name(match["name"])] = match["version"]
    return pinned


def declared(*groups: str) -> list[Requirement]:
    """pyproject.toml's dependencies, plus the named extras; the project's own extras expanded."""
    wanted = [Requirement(spec) for spec in PYPROJECT["dependencies"]]
    for group in groups:
        for spec in PYPROJECT["optional-dependencies"][group]:
            requirement = Requirement(spec)
            if canonicalize_name(requirement.name) == PYPROJECT["name"]:
                wanted += declared(*requirement.extras)
            else:
                wanted.append(requirement)
    return wanted


def test_requirements_txt_is_the_runtime_lock():
    runtime = requirement_lines(ROOT / "requirements" / "runtime.lock")
    assert requirement_lines(ROOT / "requirements.txt") == runtime


def test_each_lock_pins_every_declared_dependency_within_its_range():
    for lock, groups in [("runtime.lock", ()), ("local.lock", ("local",)), ("dev.lock", ("dev",))]:
        pinned = pins(lock)
        for requirement in declared(*groups):
            version = pinned.get(canonicalize_name(requirement.name))
            assert version is not None, f"{lock} does not pin {requirement}"
            in_range = requirement.specifier.contains(version, prereleases=True)
            assert in_range, f"{lock} pins {requirement.name}=={version}, outside {requirement}"


def test_a_package_has_one_version_in_every_lock():
    runtime, local, dev = pins("runtime.lock"), pins("local.lock"), pins("dev.lock")
    assert runtime.items() <= local.items()
    assert local.items() <= dev.items()
