# Two commands on a fresh machine: `make run` and `make test`. Everything else is installed here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# One install per profile, redone when its lock or pyproject.toml changes: `make run` installs
# requirements/local.lock (the runtime and the local runtime), `make test` requirements/dev.lock
# (that and the test and lint tools). A lock pins every package with its hashes (`make lock`); the
# project goes on top with --no-deps, so nothing the lock does not name is installed.
RUN_STAMP  := $(VENV)/.installed-local
TEST_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench clean browser dynalite lock
# The browser tests (tests/browser) drive Debian's Chromium; a CJK font makes zh-CN screenshots legible.
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: requirements/%.lock pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r $<
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Regenerates the locks from pyproject.toml, keeping every pin that still fits (LOCK_ARGS=--upgrade,
# or --upgrade-package NAME, moves them). Run it with Python 3.11, the Lambda runtime's. dev.lock is
# resolved first and the others within it, so a package has one version in all three; `miaofa[local]`
# in the dev extra is the project itself, left out of the lock. requirements.txt, which `sam build`
# reads, is runtime.lock under a header.
PIP_TOOLS := .miaofa/pip-tools
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(PIP_TOOLS)/bin/pip-compile --quiet --generate-hashes \
	--strip-extras --unsafe-package miaofa --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)
$(PIP_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(PIP_TOOLS)
	$(PIP_TOOLS)/bin/pip install --quiet pip-tools==7.7.0
lock: $(PIP_TOOLS)/bin/pip-compile
	$(PIP_COMPILE) --extra dev -o requirements/dev.lock pyproject.toml
	$(PIP_COMPILE) --extra local -c requirements/dev.lock -o requirements/local.lock pyproject.toml
	$(PIP_COMPILE) -c requirements/dev.lock -o requirements/runtime.lock pyproject.toml
	{ echo "# What the Lambda functions need at run time; \`sam build\` installs this file. It is"; \
	  echo "# requirements/runtime.lock, copied by \`make lock\` (tests/test_packaging.py checks)."; \
	  cat requirements/runtime.lock; } > requirements.txt

run: $(RUN_STAMP)
	$(PY) -m infra.local

browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  echo "make test: installing $(BROWSER_PACKAGES) for the browser tests" >&2; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; }

# dynalite (npm), an independent DynamoDB, under .miaofa/node: the end-to-end tests run on it too.
dynalite: $(TEST_STAMP)
	@$(PY) -m infra.local.dynalite

# The end-to-end tests run a second time with DynamoDB on dynalite, so a behaviour only moto has
# cannot pass (docs/local-runtime.md). Both passes always run; either failing fails the target.
DYNALITE_TESTS := tests/e2e/test_store_mode.py tests/e2e/test_flash_sale.py \
	tests/e2e/test_crash_points.py tests/e2e/test_edge_crash_points.py tests/e2e/test_provider_conformance.py
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
COLLECTED := if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=1; fi
test: $(TEST_STAMP) browser dynalite
	@MIAOFA_STORE=moto $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; $(COLLECTED); moto=$$rc; \
	echo "make test: the end-to-end tests again, with DynamoDB on dynalite" >&2; \
	MIAOFA_STORE=dynalite $(PY) -m pytest $(DYNALITE_TESTS); rc=$$?; $(COLLECTED); \
	if [ $$moto -ne 0 ]; then exit $$moto; fi; exit $$rc

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The benchmarks drive the local runtime with requests, a test tool.
bench: $(TEST_STAMP)
	$(PY) -m bench.latency

clean:
	rm -rf $(VENV) .miaofa .pytest_cache .mypy_cache .ruff_cache
