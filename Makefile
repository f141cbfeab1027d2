# srcflask: `make run` starts the app on the embedded default, `make test` runs the tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WEB := services/web
FLASK := cd $(WEB) && ../../$(BIN)/flask --app srcflask
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install install-test lint format migrate clean help browser-deps \
	production-deps lock audit tools

help:
	@echo "make run    install, migrate, fetch the default model, seed demo users and start"
	@echo "            srcflask on http://$(HOST):$(PORT)"
	@echo "make test   install test tools and run the suite (SQLite; Postgres/Redis too when"
	@echo "            TEST_DATABASE_URL / TEST_REDIS_URL are set)"
	@echo "make lint   ruff"
	@echo "make lock   regenerate the hashed locks in $(WEB)/requirements/ (UPGRADE=pkg or all)"
	@echo "make audit  pip-audit the locked set (exceptions: $(WEB)/requirements/audit-exceptions.toml)"

# pip says nothing unless something fails; setuptools' note on editable installs is
# not for the people running srcflask.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -qq

# Every install comes from the hashed locks in $(REQ) (`make lock` writes them): pip
# checks each file's hash, then installs srcflask itself with --no-deps. PyTorch's CPU
# build comes from torch-cpu.txt (its own hash; pip finds the wheel through the
# machine's find-links, /opt/wheels on the build machines).
REQ := $(WEB)/requirements
PIP_LOCKED := $(PIP_INSTALL) --require-hashes

$(BIN)/python:
	@echo "== Creating a virtual environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --require-hashes -r $(REQ)/pip.txt

$(VENV)/.installed: $(BIN)/python $(WEB)/pyproject.toml $(REQ)/torch-cpu.txt $(REQ)/app.txt
	@echo "== Installing srcflask and its locked dependencies into $(VENV)"
	@echo "   (the first time takes a few minutes: PyTorch alone is several hundred MB)"
	@$(PIP_LOCKED) -r $(REQ)/torch-cpu.txt -r $(REQ)/app.txt
	@$(PIP_INSTALL) --no-deps --no-build-isolation -e "$(WEB)"
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; \
		echo "$(REQ) lacks what pyproject.toml asks for: run make lock"; exit 1; }
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(REQ)/test.txt
	@echo "== Installing the locked test tools into $(VENV)"
	@$(PIP_LOCKED) -r $(REQ)/torch-cpu.txt -r $(REQ)/test.txt
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; exit 1; }
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# The set-up steps log warnings only: each says what it does in one line.
QUIET_FLASK := cd $(WEB) && LOG_LEVEL=WARNING ../../$(BIN)/flask --app srcflask

run: install
	@echo "== Bringing the database up to date"
	@$(QUIET_FLASK) db upgrade
	@echo "== Checking the default model (the first time: fetch and convert it, about a minute)"
	@$(QUIET_FLASK) models pull-default --if-missing
	@echo "== Demo accounts"
	@$(QUIET_FLASK) seed-demo
	@echo
	@echo "  srcflask is starting on http://$(HOST):$(PORT)"
	@echo "  Log in with one of the demo logins above (stop with Ctrl+C)."
	@echo
	@$(FLASK) run --host $(HOST) --port $(PORT)

test: install-test
	cd $(WEB) && ../../$(BIN)/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the suite again on Postgres ($$TEST_DATABASE_URL) =="; \
		cd $(WEB) && ../../$(BIN)/pytest --db postgres -m "not slow"; \
	fi

# Chromium for the browser test (Debian's package; Playwright only drives it).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium \
		|| (apt-get update -q && apt-get install -y -q chromium)

# nginx for the production smoke test, docker-compose to validate the compose files
# (Debian's packages; no Docker engine is needed).
production-deps:
	@command -v nginx >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1 \
		|| apt-get install -y -q nginx docker-compose \
		|| (apt-get update -q && apt-get install -y -q nginx docker-compose)

lint: install-test
	$(BIN)/ruff check $(WEB)
	$(BIN)/ruff format --check $(WEB)

format: install-test
	$(BIN)/ruff check --fix $(WEB)
	$(BIN)/ruff format $(WEB)

migrate: install
	$(FLASK) db migrate -m "$(or $(MESSAGE),schema change)"

# The lock and audit tools (uv, pip-audit), hashed too, in a venv of their own.
TOOLS := .venv-tools
TOOLS_BIN := $(TOOLS)/bin

$(TOOLS)/.installed: $(REQ)/pip.txt $(REQ)/tools.txt
	@echo "== Installing uv and pip-audit into $(TOOLS)"
	@test -x $(TOOLS_BIN)/python || $(PYTHON) -m venv $(TOOLS)
	@$(TOOLS_BIN)/python -m pip install -qq --require-hashes -r $(REQ)/pip.txt
	@$(TOOLS_BIN)/pip install -qq --require-hashes -r $(REQ)/tools.txt
	@touch $@

tools: $(TOOLS)/.installed

# Regenerate the locks for CPython 3.11 on Linux x86_64. Pins already in a lock are
# kept; UPGRADE=flask moves one package (and what it needs), UPGRADE=all everything.
# torch's metadata comes from TORCH_WHEELS, so what it needs is locked; torch itself is
# pinned by hand in torch-cpu.txt (see there).
TORCH_WHEELS ?= /opt/wheels
UPGRADE ?=
UV_COMPILE := cd $(REQ) && ../../../$(TOOLS_BIN)/uv pip compile -q --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock" \
	$(if $(filter all,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))
UV_COMPILE_APP := $(UV_COMPILE) --find-links $(TORCH_WHEELS) --override torch-cpu.txt \
	--no-emit-package torch

lock: $(TOOLS)/.installed
	$(UV_COMPILE_APP) ../pyproject.toml --extra test --extra dev -o test.txt
	$(UV_COMPILE_APP) ../pyproject.toml --constraint test.txt -o app.txt
	$(UV_COMPILE) pip.in -o pip.txt
	$(UV_COMPILE) tools.in -o tools.txt
	$(UV_COMPILE) scan.in -o scan.txt
	$(UV_COMPILE) load.in -o load.txt

# Known vulnerabilities in the locked set (PyPI's advisory data), less the recorded,
# dated exceptions; .ci/audit.py says which and why.
audit: $(TOOLS)/.installed
	$(TOOLS_BIN)/python .ci/audit.py --pip-audit $(TOOLS_BIN)/pip-audit \
		--exceptions $(REQ)/audit-exceptions.toml \
		$(REQ)/torch-cpu.txt $(REQ)/test.txt $(REQ)/tools.txt $(REQ)/scan.txt $(REQ)/load.txt

clean:
	rm -rf $(VENV) $(TOOLS) $(WEB)/*.egg-info
