PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt migrate migration bench check clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project with its dev extras

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: install ## run the bot (embedded PostgreSQL unless DATABASE_URL is set)
	@$(BIN)/python -m bot run

test: install ## run the whole test suite
	$(BIN)/python -m pytest -n 2

lint: install ## ruff and mypy (strict on bot and db)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: install ## bring the database schema to head
	@$(BIN)/python -m bot migrate

migration: install ## new Alembic revision: make migration m="what changed"
	@test -n "$(m)" || (echo 'usage: make migration m="what changed"' && exit 2)
	@$(BIN)/python -m bot migrate
	$(BIN)/alembic revision --autogenerate -m "$(m)"

check: install ## diagnose settings, Telegram, chats, database, media, Instagram
	@$(BIN)/python -m bot check

bench: install ## benchmarks against the embedded PostgreSQL; prints figures
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		(apt-get install -y -qq pgbouncer >/dev/null 2>&1 || echo "pgbouncer not installed: its figures are skipped")
	$(BIN)/python -m benchmarks

clean: ## remove the virtualenv and caches (keeps .data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
