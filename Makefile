# dnsaudit — two commands: `make run` (dashboard with a demo fleet) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test venv system-deps lint check bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	scripts/install-system-deps.sh

## Run the dashboard at http://127.0.0.1:$(PORT) (PORT=8000 unless given: make run PORT=8001) on SQLite with in-process scans and a demo fleet.
PORT ?= 8000
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure-admin
	$(PY) manage.py demo --serve --addr 127.0.0.1:$(PORT)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: venv
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	DNSAUDIT_PRODUCTION=1 SECRET_KEY=check-deploy-$$RANDOM-0123456789abcdefghijklmnopqrstuvwxyz-0123456789 \
	  ALLOWED_HOSTS=dnsaudit.example DNSAUDIT_FERNET_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	  $(PY) manage.py check --deploy --fail-level WARNING

## Run every test: installs system packages and Python deps, starts throwaway PostgreSQL and Redis.
test: system-deps venv lint check
	$(PY) scripts/with-services.py -- $(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
