# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Development defaults; set DEBUG=false (and SECRET_KEY) in the environment for production.
export DEBUG ?= true

.PHONY: run dev test lint typecheck pytest migrate superuser bench bench-sustained bench-litellm bench-compare bench-targets clean

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

# Streams one daphne process keeps at the upstream's pace, ramped until frames stall (bench/README.md).
bench-sustained: $(VENV)/.installed
	$(BIN)/python bench/sustained.py

# LiteLLM for bench/compare.py, in a virtualenv of its own (its pins are not ours); ignored by git from inside.
LITELLM_VENV := bench/.venv-litellm
$(LITELLM_VENV)/.installed: requirements-bench.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	echo '*' > $(LITELLM_VENV)/.gitignore
	$(LITELLM_VENV)/bin/pip install --quiet -r requirements-bench.txt
	touch $@

bench-litellm: $(LITELLM_VENV)/.installed

# This project against the LiteLLM proxy on the same fake upstream, in one run.
bench-compare: $(VENV)/.installed $(LITELLM_VENV)/.installed
	$(BIN)/python bench/compare.py

# Every issue-16 target with its measured figure, met or not (about 5-8 minutes; PostgreSQL + Redis rows need
# BENCH_DATABASE_URL and BENCH_REDIS_URL, see bench/README.md).
bench-targets: $(VENV)/.installed
	$(BIN)/python bench/targets.py

clean:
	rm -rf $(VENV) .test-db.sqlite3* .mypy_cache .ruff_cache
