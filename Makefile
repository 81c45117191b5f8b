# Ferry — run `make help` for the targets. `make test` and `make demo` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Workers for the suite (pytest-xdist): each starts its own nats-server and SeaweedFS. Tests wait on
# servers and subprocesses much of the time, so six workers keep two cores busy (on 2 cores: 4.4 min
# with six, 5 with four, 11 serially).
PYTEST_WORKERS ?= 6

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml sandbox/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# compat: the checkout goes on sys.path through a plain .pth file. The default editable install
	@# loads an import hook at every interpreter start (~20 ms, a third of a mover's start-up; an image
	@# installed with `pip install .` has none). setuptools calls compat transitional: if it is gone,
	@# the default install follows.
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat \
		|| $(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The sandbox (test double and local-stack launcher) is a distribution of its own, never in the
	@# product's wheel or image; the checkout's root on sys.path already serves `import sandbox`.
	$(BIN)/python -m pip install --quiet -e ./sandbox --config-settings editable_mode=compat \
		|| $(BIN)/python -m pip install --quiet -e ./sandbox
	@touch $(STAMP)

.PHONY: setup
setup: $(STAMP) ## Create .venv and install Ferry with its dev tools

.PHONY: lint
lint: $(STAMP) ## ruff (check + format), mypy --strict on shared/ and services/, import-linter layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

.PHONY: fmt
fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: browser
browser: ## Headless Chromium for tests/console (Debian's package; installs as root)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } \
		|| { echo "tests/console need chromium: apt-get install -y chromium" >&2; exit 1; }

.PHONY: test
test: ## Lint, then the whole test suite (real nats-server, SeaweedFS, sandbox clusters)
	@# The browser's install (apt, mostly network) overlaps the venv's (pip) and lint.
	$(MAKE) --no-print-directory -j2 lint browser
	@# The suite starts hundreds of Python processes (services, movers, CLI): each compiles the
	@# checkout's modules unless their bytecode is cached (0.1 s of CPU per service start), so
	@# caching is on even where the environment turns it off with PYTHONDONTWRITEBYTECODE=1.
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

.PHONY: demo
demo: $(STAMP) ## Run Ferry's main job on the embedded local stack (pass ARGS=--keep to leave it running)
	$(BIN)/python -m services.demo $(ARGS)

.PHONY: bench
bench: $(STAMP) ## Data-path benchmark (benchmarks/mover.py)
	$(BIN)/python benchmarks/mover.py $(ARGS)

.PHONY: bench-verify
bench-verify: $(STAMP) ## Verify vs discover on 10,000 objects (benchmarks/verify.py)
	$(BIN)/python benchmarks/verify.py $(ARGS)

.PHONY: schema
schema: $(STAMP) ## Regenerate the published JSON Schemas (docs/schema/) and OpenAPI (docs/openapi.json)
	$(BIN)/python -m shared.contracts.schema docs/schema
	$(BIN)/python -m services.gateway.openapi docs/openapi.json

.PHONY: up
up: ## docker compose up (needs a Docker engine)
	docker compose up -d --build

.PHONY: down
down: ## docker compose down
	docker compose down -v

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
