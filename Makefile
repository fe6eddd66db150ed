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

.PHONY: run test lint bench clean browser dynalite lock sam
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
# reads, is runtime.lock under a header. sam.lock, the SAM CLI's own (below), is resolved on its own.
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
	$(PIP_COMPILE) -o requirements/sam.lock requirements/sam.in
	{ echo "# What the Lambda functions need at run time; \`sam build\` installs this file. It is"; \
	  echo "# requirements/runtime.lock, copied by \`make lock\` (tests/test_packaging.py checks)."; \
	  cat requirements/runtime.lock; } > requirements.txt

# The AWS SAM CLI in its own venv, from its own hashed lock (requirements/sam.in, pinned by `make lock`
# into requirements/sam.lock): none of its dependencies meets the project's. tests/test_build.py runs
# `make sam`, then `sam build`; deploy with `.miaofa/sam/bin/sam build && .miaofa/sam/bin/sam deploy`.
# pip is upgraded first: an older one (23.x) refuses the lock's dependencies that name extras.
SAM_VENV := .miaofa/sam
$(SAM_VENV)/.installed: requirements/sam.lock
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet --require-hashes -r requirements/sam.lock
	touch $@
sam: $(SAM_VENV)/.installed

# What `sam build` runs (template.yaml: `BuildMethod: makefile`, with samconfig.toml's build_in_source,
# here in the repository): `make build-<LogicalId>` with ARTIFACTS_DIR set. A function's package is
# functions/__init__.py, its own folder and shared/ (the openapi function: every function's folder, as it
# reads their routes); nothing else of the repository (tests, docs, bench, infra, .miaofa's
# credentials) and no __pycache__. The runtime lock goes once into DependenciesLayer (python/, which
# Lambda puts on sys.path), as wheels for the template's runtime and architecture (CPython 3.11, arm64),
# each checked against its hash; console scripts (bin/) are of no use there.
ARTIFACTS_DIR_SET = @test -n "$(ARTIFACTS_DIR)" || { echo "$@: ARTIFACTS_DIR is unset (sam build sets it)" >&2; exit 1; }
define FUNCTION_PACKAGE
$(ARTIFACTS_DIR_SET)
mkdir -p "$(ARTIFACTS_DIR)/functions"
cp -R $(addprefix functions/,__init__.py $(1)) "$(ARTIFACTS_DIR)/functions/"
cp -R shared "$(ARTIFACTS_DIR)/"
find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
endef
EVERY_FUNCTION = $(patsubst functions/%/handler.py,%,$(wildcard functions/*/handler.py))
LAMBDA_WHEELS := --platform manylinux2014_aarch64 --implementation cp --python-version 3.11 --only-binary=:all:
# The layer's pip: the SAM CLI venv's (recent, pinned by `make sam`) if there, else $(PYTHON)'s.
LAYER_PIP = $(if $(wildcard $(SAM_VENV)/bin/pip),$(SAM_VENV)/bin/pip,$(PYTHON) -m pip)
.PHONY: build-StorefrontFunction build-WebhookFunction build-DeliverFunction build-NotifyFunction \
	build-ReconcileFunction build-MerchantFunction build-OpenApiFunction build-MerchantAuthorizerFunction \
	build-SocketFunction build-PushFunction build-DependenciesLayer
build-StorefrontFunction:
	$(call FUNCTION_PACKAGE,storefront)
build-WebhookFunction:
	$(call FUNCTION_PACKAGE,webhook)
build-DeliverFunction:
	$(call FUNCTION_PACKAGE,deliver)
build-NotifyFunction:
	$(call FUNCTION_PACKAGE,notify)
build-ReconcileFunction:
	$(call FUNCTION_PACKAGE,reconcile)
build-MerchantFunction:
	$(call FUNCTION_PACKAGE,merchant)
build-OpenApiFunction:
	$(call FUNCTION_PACKAGE,$(EVERY_FUNCTION))
build-MerchantAuthorizerFunction:
	$(call FUNCTION_PACKAGE,authorizer)
build-SocketFunction:
	$(call FUNCTION_PACKAGE,socket)
build-PushFunction:
	$(call FUNCTION_PACKAGE,push)
build-DependenciesLayer:
	$(ARTIFACTS_DIR_SET)
	$(LAYER_PIP) install --quiet --no-compile --require-hashes $(LAMBDA_WHEELS) \
		--target "$(ARTIFACTS_DIR)/python" -r requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/python/bin"

run: $(RUN_STAMP)
	$(PY) -m infra.local

# Outside CI a tool that cannot be installed here (no root, another OS) does not stop the rest of the
# suite: its tests say why they skip (tests/browser/conftest.py), or the dynalite pass is left out. In
# CI (CI=true) either one missing fails `make test`.
BROWSER_MISSING = { [ "$$CI" != true ] || exit 1; echo "make test: no Chromium (installing it needs root, or \
	set MIAOFA_CHROMIUM): the browser tests will skip" >&2; }
browser:
	@[ -x "$${MIAOFA_CHROMIUM:-/usr/bin/chromium}" ] && dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; } && \
	  echo "make test: installing $(BROWSER_PACKAGES) for the browser tests" >&2 && \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; } || \
	[ -x "$${MIAOFA_CHROMIUM:-/usr/bin/chromium}" ] || $(BROWSER_MISSING)

# dynalite (npm), an independent DynamoDB, under .miaofa/node: the end-to-end tests run on it too.
dynalite: $(TEST_STAMP)
	@$(PY) -m infra.local.dynalite

# The end-to-end tests run a second time with DynamoDB on dynalite, so a behaviour only moto has
# cannot pass (docs/local-runtime.md). Both passes always run; either failing fails the target.
DYNALITE_TESTS := tests/e2e/test_store_mode.py tests/e2e/test_flash_sale.py \
	tests/e2e/test_crash_points.py tests/e2e/test_edge_crash_points.py tests/e2e/test_provider_conformance.py
# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
COLLECTED := if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=1; fi
# The suite runs in parallel (pytest-xdist): each worker is a process with its own local runtime
# (tests/conftest.py starts one per session); a test file stays on one worker (its module fixtures are
# made once) unless it says its tests may spread (tests/conftest.py). TEST_WORKERS=1 runs it in one
# process; PYTEST_ARGS adds to pytest's arguments.
TEST_WORKERS ?= 4
PARALLEL = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)
test: $(TEST_STAMP) browser
	@if $(PY) -m infra.local.dynalite; then dynalite=1; elif [ "$$CI" = true ]; then exit 1; else dynalite=0; \
	  echo "make test: no dynalite (it needs Node.js 20+): the second pass is left out" >&2; fi; \
	MIAOFA_STORE=moto $(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS); rc=$$?; $(COLLECTED); moto=$$rc; \
	if [ $$dynalite = 1 ]; then echo "make test: the end-to-end tests again, with DynamoDB on dynalite" >&2; \
	  MIAOFA_STORE=dynalite $(PY) -m pytest $(PARALLEL) $(DYNALITE_TESTS); rc=$$?; $(COLLECTED); fi; \
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
