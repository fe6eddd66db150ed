# Two commands on a fresh machine: `make run` and `make test`. Everything else is installed here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean browser dynalite
# The browser tests (tests/browser) drive Debian's Chromium; a CJK font makes zh-CN screenshots legible.
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m infra.local

browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  echo "make test: installing $(BROWSER_PACKAGES) for the browser tests" >&2; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; }

# dynalite (npm), an independent DynamoDB, under .miaofa/node: the end-to-end tests run on it too.
dynalite: $(STAMP)
	@$(PY) -m infra.local.dynalite

# The end-to-end tests run a second time with DynamoDB on dynalite, so a behaviour only moto has
# cannot pass (docs/local-runtime.md). Both passes always run; either failing fails the target.
DYNALITE_TESTS := tests/e2e/test_store_mode.py tests/e2e/test_flash_sale.py \
	tests/e2e/test_crash_points.py tests/e2e/test_edge_crash_points.py tests/e2e/test_provider_conformance.py
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
COLLECTED := if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=1; fi
test: $(STAMP) browser dynalite
	@MIAOFA_STORE=moto $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; $(COLLECTED); moto=$$rc; \
	echo "make test: the end-to-end tests again, with DynamoDB on dynalite" >&2; \
	MIAOFA_STORE=dynalite $(PY) -m pytest $(DYNALITE_TESTS); rc=$$?; $(COLLECTED); \
	if [ $$moto -ne 0 ]; then exit $$moto; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench.latency

clean:
	rm -rf $(VENV) .miaofa .pytest_cache .mypy_cache .ruff_cache
