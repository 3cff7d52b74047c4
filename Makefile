# feedbackloop: `make run` starts the whole site, `make test` runs the suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run setup test lint example worker beat web clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_site

run: setup
	$(PY) manage.py run_site

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

example: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) examples/seed_usage.py

# The pieces of `make run`, for running them as separate services.
web: $(STAMP)
	$(PY) manage.py runserver 127.0.0.1:8000
worker: $(STAMP)
	$(PY) -m celery -A feedbackloop worker -Q generation,metrics,improver,default --loglevel=INFO
beat: $(STAMP)
	$(PY) -m celery -A feedbackloop beat --loglevel=INFO

clean:
	rm -rf var media output
