# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Development defaults; set DEBUG=false (and SECRET_KEY) in the environment for production.
export DEBUG ?= true

.PHONY: run dev test lint typecheck pytest migrate superuser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput

# A staff account for /admin/, on the same defaults as `make run` (DEBUG=true is exported above).
superuser: migrate
	$(BIN)/python manage.py createsuperuser

# The same server as production (daphne, no reloader): SIGTERM drains it (pam_hybrid.runtime.shutdown), and
# static files come through WhiteNoise (with DEBUG, straight from the source directories). `exec` leaves the
# shell out, so daphne is the recipe's only process under make.
run: migrate
	exec $(BIN)/python -m daphne -b $(HOST) -p $(PORT) pam_project.asgi:application

# Development with auto-reload (runserver, daphne in a thread): restarts on code changes, but does not drain on
# SIGTERM (the reloader owns the signals); static files still come through WhiteNoise (--nostatic).
dev: migrate
	$(BIN)/python manage.py runserver --nostatic $(HOST):$(PORT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy pam_hybrid pam_project fake_upstream

pytest: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: migrate
	$(BIN)/python bench/ttft.py

clean:
	rm -rf $(VENV) .test-db.sqlite3* .mypy_cache .ruff_cache
