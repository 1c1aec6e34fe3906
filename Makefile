# The two commands: `make run` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
MANAGE := $(VENV)/bin/python manage.py
PYTEST_ARGS ?=
# The first of these that is Python 3.12 or newer builds the virtualenv.
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: run run-distributed test venv lint format bench screenshots clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@if [ -z "$(PYTHON)" ]; then \
		echo "Python 3.12 or newer is needed (looked for python3.13, python3.12, python3)."; \
		exit 1; fi
	@echo "Setting up $(VENV) with $$($(PYTHON) --version)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $@

run: venv
	@$(MANAGE) migrate --noinput -v 0
	@$(MANAGE) import_workflows --keep-existing workflows/demo
	@$(MANAGE) create_first_login
	@echo "Serving http://127.0.0.1:$(PORT)/ (Ctrl-C stops)"
	@$(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) orchestrator_site.asgi:application

# The distributed stack on one machine: PostgreSQL, Redis (channel layer and
# Celery broker), Daphne and two Celery workers, on queues default+a and
# default+b. Ctrl-C stops all of it.
DIST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orchestrator
DIST_REDIS_URL ?= redis://127.0.0.1:6379/0
run-distributed: venv
	@export DATABASE_URL=$(DIST_DATABASE_URL) REDIS_URL=$(DIST_REDIS_URL) \
		CELERY_BROKER_URL=$(DIST_REDIS_URL) ORCH_EXECUTOR_AUTOSTART=true \
		ORCH_BASE_URL=http://127.0.0.1:$(PORT); \
	$(VENV)/bin/python -c 'import sys, psycopg; url, _, name = sys.argv[1].rpartition("/"); \
		c = psycopg.connect(url + "/postgres", autocommit=True); \
		c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
		or c.execute(f"CREATE DATABASE \"{name}\"")' "$$DATABASE_URL" && \
	$(MANAGE) migrate --noinput -v 0 && \
	$(MANAGE) import_workflows --keep-existing workflows/demo && \
	$(MANAGE) create_first_login && \
	trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/celery -A orchestrator_site worker -Q default,a -n a@%h -c 4 -l INFO & \
	$(VENV)/bin/celery -A orchestrator_site worker -Q default,b -n b@%h -c 4 -l INFO & \
	echo "Serving http://127.0.0.1:$(PORT)/ with workers a (queues default, a) and b (default, b); Ctrl-C stops all"; \
	$(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) orchestrator_site.asgi:application

test: venv
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: venv
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

bench: venv
	@$(VENV)/bin/python bench/engine_overhead.py
	@$(VENV)/bin/python bench/live_updates.py

# The pictures in docs/img/, taken again from a fresh test database with
# the demo workflows (needs /usr/bin/chromium; takes a minute or two).
screenshots: venv
	@$(VENV)/bin/pytest tests/browser/screenshots.py -p no:cacheprovider -q

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
