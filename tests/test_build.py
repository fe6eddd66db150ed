"""`sam build` packages each function with its own code and shared/ only (the openapi function: every
function's code, whose routes it reads), and the runtime lock once, as the dependencies layer, for the
template's architecture. No package holds tests, docs, benchmarks, the local runtime or local
credentials. The SAM CLI comes from its own venv (`make sam`, requirements/sam.lock)."""

import fcntl
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from samtranslator.yaml_helper import yaml_parse

from tests.test_packaging import pins

ROOT = Path(__file__).resolve().parents[1]
SAM = ROOT / ".miaofa" / "sam" / "bin" / "sam"
LAYER = "DependenciesLayer"
# Measured (BENCHMARKS.md, "Packages"): each function 0.12-0.14 MB zipped (openapi 0.19 MB), the layer
# 27.8 MB zipped, 54 MB unzipped. Lambda takes 250 MB unzipped, a function and its layers together.
FUNCTION_ZIPPED_AT_MOST = 1_000_000
LAYER_UNZIPPED_AT_MOST = 100_000_000
NEVER_PACKAGED = re.compile(
    r"(^|/)(tests|docs|bench|infra|\.miaofa|\.venv|\.git|__pycache__)(/|$)"
    r"|(^|/)(providers\.json|local\.json|samconfig\.toml|Makefile|template\.yaml)$"
    r"|(^|/)\.env|secret|\.pyc$"
)
AARCH64 = 183  # an ELF file's e_machine


def template_functions() -> dict[str, str]:
    """Each function's logical id and the folder of functions/ its handler is in."""
    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    return {
        name: resource["Properties"]["Handler"].split(".")[1]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def files(top: Path) -> set[str]:
    return {path.relative_to(top).as_posix() for path in top.rglob("*") if path.is_file()}


def source(*folders: str) -> set[str]:
    """The repository's files in these folders, as a package holds them (no bytecode)."""
    return {
        name
        for folder in folders
        for name in (f"{folder}/{path}" for path in files(ROOT / folder))
        if "__pycache__" not in name.split("/")
    }


def zipped_size(top: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files(top)):
            archive.write(top / name, name)
    return buffer.tell()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`sam build` of template.yaml into a temporary directory, by the pinned SAM CLI."""
    SAM.parents[2].mkdir(exist_ok=True)
    with open(SAM.parents[2] / "sam-install.lock", "w") as installing:  # one install at a time (xdist)
        fcntl.flock(installing, fcntl.LOCK_EX)
        subprocess.run(["make", "--no-print-directory", "--silent", "sam"], cwd=ROOT, check=True)
    out = tmp_path_factory.mktemp("sam") / "build"
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    command = [str(SAM), "build", "--build-dir", str(out), "--template", "template.yaml"]
    built = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield out
    shutil.rmtree(out)  # ~55 MB, the layer mostly


def test_the_built_template_gives_each_function_its_own_package_and_the_dependencies_layer(build):
    resources = yaml_parse((build / "template.yaml").read_text())["Resources"]
    assert resources[LAYER]["Properties"]["ContentUri"] == LAYER
    assert resources[LAYER]["Properties"]["CompatibleArchitectures"] == ["arm64"]
    for name in template_functions():
        assert resources[name]["Properties"]["CodeUri"] == name
    globals_ = yaml_parse((build / "template.yaml").read_text())["Globals"]["Function"]
    assert globals_["Layers"] == [{"Ref": LAYER}]
    assert globals_["Architectures"] == ["arm64"] and globals_["Runtime"] == "python3.11"


def test_each_function_package_holds_its_own_code_and_shared_and_nothing_else(build):
    every_function = {path.parent.name for path in (ROOT / "functions").glob("*/handler.py")}
    for name, folder in template_functions().items():
        package = files(build / name)
        own = every_function if folder == "openapi" else {folder}
        expected = {"functions/__init__.py"} | source(*(f"functions/{f}" for f in own)) | source("shared")
        assert f"functions/{folder}/handler.py" in package
        assert package == expected, f"{name}: extra {package - expected}, missing {expected - package}"
        assert not [path for path in package if NEVER_PACKAGED.search(path)], name
        size = zipped_size(build / name)
        assert size <= FUNCTION_ZIPPED_AT_MOST, f"{name}: {size} bytes zipped"


def test_each_function_imports_only_from_its_own_package(build):
    """Its handler loads with the package first on the path: every module of functions/ and shared/ it
    imports comes from the package (the repository is importable too, through the editable install)."""
    probe = (
        "import importlib, sys; module = sys.argv[2]; importlib.import_module(module); "
        "outside = [name for name, m in list(sys.modules.items()) if name.split('.')[0] in "
        "('functions', 'shared') and not (getattr(m, '__file__', None) or sys.argv[1]).startswith(sys.argv[1])]; "
        "print(outside); sys.exit(1 if outside else 0)"
    )
    for name, folder in template_functions().items():
        package = str(build / name)
        handler = f"functions.{folder}.handler"
        # -I: no current directory or PYTHONPATH on the path, only the package put first by `-c`.
        command = [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, sys.argv[1]); {probe}"]
        loaded = subprocess.run(
            [*command, package, handler], cwd=build, capture_output=True, text=True, timeout=120
        )
        assert loaded.returncode == 0, f"{name}: {loaded.stdout[-2000:]}{loaded.stderr[-2000:]}"


def test_the_layer_holds_the_runtime_lock_built_for_arm64_and_nothing_else(build):
    layer = build / LAYER
    content = files(layer)
    assert content and all(path.startswith("python/") for path in content)
    assert not [path for path in content if "__pycache__" in path or path.startswith("python/bin/")]
    installed = {
        canonicalize_name(match[1]): match[2]
        for path in content
        if (match := re.match(r"python/([^/]+)-([^-/]+)\.dist-info/METADATA$", path))
    }
    assert installed == pins("runtime.lock")
    binaries = [layer / path for path in content if path.endswith(".so")]
    assert binaries
    for binary in binaries:
        header = binary.read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == AARCH64, binary
    unzipped = sum((layer / path).stat().st_size for path in content)
    assert unzipped <= LAYER_UNZIPPED_AT_MOST, f"{unzipped} bytes"
