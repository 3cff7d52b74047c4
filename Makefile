# feedbackloop: `make run` starts the whole site, `make test` runs the suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run setup test test-diffusers lint example worker beat web clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet -e clients/python
	touch $(STAMP)

setup: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_site

run: setup
	$(PY) manage.py run_site

# axe-core for the browser tests' accessibility checks, from the npm registry (pinned by the
# lock file). Without npm the checks skip with a reason (and fail in CI).
AXE := tests/browser/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) && touch $@; \
	else \
		echo "npm not found: the accessibility checks of the browser tests will skip"; \
	fi

test: $(STAMP) $(AXE)
	$(PY) -m pytest -m "not diffusers"

# The diffusers worker's end-to-end test needs the diffusers extra (torch CPU build, diffusers).
DIFFUSERS_STAMP := $(VENV)/.installed-diffusers
$(DIFFUSERS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,diffusers]"
	touch $@

test-diffusers: $(DIFFUSERS_STAMP)
	$(PY) -m pytest -m diffusers tests/diffusers

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

example: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) examples/seed_usage.py

# The pieces of `make run`, for running them as separate services.
web: $(STAMP)
	$(PY) manage.py runserver 127.0.0.1:8000
worker: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m celery -A feedbackloop worker -Q generation,metrics,improver,default --loglevel=INFO
beat: $(STAMP)
	$(PY) -m celery -A feedbackloop beat --loglevel=INFO

clean:
	rm -rf var media output
