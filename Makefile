# The front door: `make run` and `make test` on a machine with python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Local use only: DEBUG=True allows the development secret key. Production sets
# DEBUG=False, SECRET_KEY and ALLOWED_HOSTS itself (see docs/deployment notes in README).
LOCAL := DEBUG=True MPLCONFIGDIR=$(CURDIR)/.mplconfig

.PHONY: run test install lint format migrations-check rules-coverage screenshots postgres clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "CTC Track needs Python 3.11 or newer ($(PYTHON) is older)."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create a virtual environment. On Debian or Ubuntu: apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(LOCAL) $(PY) manage.py migrate --no-input
	$(LOCAL) $(PY) manage.py seed_demo
	@echo "Serving CTC Track at http://$(HOST):$(PORT)/"
	$(LOCAL) $(PY) manage.py runserver $(HOST):$(PORT)

test: install
	$(LOCAL) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Browser journeys in Chromium, saving a screenshot of every page to docs/screenshots/.
screenshots: install
	$(LOCAL) CTCTRACK_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/browser

# The clinical rules module must stay at full branch coverage from its own tests.
rules-coverage: install
	$(LOCAL) $(PY) -m pytest -q tests/test_rules.py --cov=patients.rules --cov-branch \
		--cov-report=term-missing --cov-fail-under=100

migrations-check: install
	$(LOCAL) $(PY) manage.py makemigrations --check --dry-run

# Start a local PostgreSQL (Debian) and print the DATABASE_URL to use.
postgres:
	bash scripts/postgres.sh

clean:
	rm -rf $(VENV) .mplconfig
