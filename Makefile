# srcflask: `make run` starts the app on the embedded default, `make test` runs the tests.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WEB := services/web
FLASK := cd $(WEB) && ../../$(BIN)/flask --app srcflask
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install install-test lint format migrate clean help browser-deps \
	production-deps

help:
	@echo "make run    install, migrate, fetch the default model, seed demo users and start"
	@echo "            srcflask on http://$(HOST):$(PORT)"
	@echo "make test   install test tools and run the suite (SQLite; Postgres/Redis too when"
	@echo "            TEST_DATABASE_URL / TEST_REDIS_URL are set)"
	@echo "make lint   ruff"

# pip says nothing unless something fails; setuptools' note on editable installs is
# not for the people running srcflask.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -qq

$(BIN)/python:
	@echo "== Creating a virtual environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --upgrade pip

$(VENV)/.installed: $(BIN)/python $(WEB)/pyproject.toml
	@echo "== Installing srcflask and its dependencies into $(VENV)"
	@echo "   (the first time takes a few minutes: PyTorch alone is several hundred MB)"
	@$(PIP_INSTALL) -e "$(WEB)"
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed $(WEB)/pyproject.toml
	@echo "== Installing the test tools into $(VENV)"
	@$(PIP_INSTALL) -e "$(WEB)[test,dev]"
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

clean:
	rm -rf $(VENV) $(WEB)/*.egg-info
