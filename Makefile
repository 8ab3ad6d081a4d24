# The front door: `make run` and `make test` on a machine with python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make run HOST=0.0.0.0 PORT=8080`: where `make run` listens (see README: a ward tablet).
HOST ?= 127.0.0.1
PORT ?= 8000
# Local use only: DEBUG=True allows the development secret key. Production sets
# DEBUG=False, SECRET_KEY and ALLOWED_HOSTS itself (see docs/deployment.md).
LOCAL := DEBUG=True MPLCONFIGDIR=$(CURDIR)/.mplconfig

.PHONY: lock run test install lint format migrations-check check-deploy audit-deps rules-coverage screenshots chart-samples browser-tools bench postgres clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "CTC Track needs Python 3.11 or newer ($(PYTHON) is older)."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create a virtual environment. On Debian or Ubuntu: apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(LOCAL) $(PY) manage.py migrate --no-input
	$(LOCAL) $(PY) manage.py seed_demo
	@echo "Serving CTC Track at http://$(HOST):$(PORT)/ (the app's own error pages;" \
		"CTCTRACK_TECHNICAL_ERROR_PAGES=True for Django's technical ones)"
	@case "$(HOST)" in 127.0.0.1|localhost|::1) ;; *) test -n "$$ALLOWED_HOSTS" || echo \
		"Other devices will get 400 Bad Request: add ALLOWED_HOSTS=<this machine's address> (see README)";; esac
	$(LOCAL) $(PY) manage.py runserver $(HOST):$(PORT)

test: install
	@test -f tests/browser/axe/node_modules/axe-core/axe.min.js || $(MAKE) --no-print-directory browser-tools
	$(LOCAL) $(PY) -m pytest $(PYTEST_ARGS)

# ruff; mypy (its Django plugin imports the settings, hence LOCAL's DEBUG=True);
# import-linter's contracts. All configured in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LOCAL) $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Test-only browser tools (axe-core for the accessibility audit), from the npm registry.
browser-tools:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/browser/axe --no-audit --no-fund --ignore-scripts \
		|| echo "npm ci failed: the accessibility audit will be skipped"; \
	else echo "npm not found: the accessibility audit will be skipped (Debian: apt-get install npm)"; fi

# Browser journeys in Chromium, saving a screenshot of every page to docs/screenshots/.
screenshots: install
	$(LOCAL) CTCTRACK_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/browser

# The chart samples in docs/chart-samples: invented patients' downloaded charts, drawn by
# the app's chart code from fixed data (same code, same bytes). Run after changing the chart.
chart-samples: install
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(PY) scripts/chart_samples.py docs/chart-samples

# The clinical rules module must stay at full branch coverage from its own tests.
RULES_TESTS := $(addprefix tests/rules/,test_samples.py test_flags.py test_rise.py test_cycles.py \
	test_acknowledgement.py test_properties.py test_stable_patients.py)
rules-coverage: install
	$(LOCAL) $(PY) -m pytest -q $(RULES_TESTS) --cov=patients.rules --cov-branch \
		--cov-report=term-missing --cov-fail-under=100

migrations-check: install
	$(LOCAL) $(PY) manage.py makemigrations --check --dry-run

# Django's deployment checks and the project's own (ctctrack/checks.py) under production
# settings: DEBUG off, a throwaway random SECRET_KEY, an example host. Any warning fails.
check-deploy: install
	DEBUG=False SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
		CTCTRACK_AUDIT_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(48))')" \
		ALLOWED_HOSTS=ctctrack.example.org $(PY) manage.py check --deploy --fail-level WARNING

# Known vulnerabilities in every pinned package (pip-audit over constraints.txt). Fails on
# one; says "skipped" (and passes) where the advisory database cannot be reached, and
# never "no known vulnerabilities" unless the packages were looked up.
audit-deps: install
	$(PY) scripts/audit_dependencies.py

# Does it stay fast as the data grows? A synthetic cohort of 100 then 10,000 patients in
# PostgreSQL (its own <name>_bench_cohort database), pages, chart, CSV import and HTTP load
# (gunicorn + wrk), written to bench/results.md. About 20 minutes; BENCH_QUICK=1 for a
# few-minute smoke run. Not part of `make test`. See bench/README.md.
bench: install
	MPLCONFIGDIR=$(CURDIR)/.mplconfig $(PY) bench/run.py

# Start a local PostgreSQL (Debian) and print the DATABASE_URL to use.
postgres:
	bash scripts/postgres.sh

clean:
	rm -rf $(VENV) .mplconfig .mypy_cache .import_linter_cache

# The full set of installed versions, after a change to requirements*.txt (review the diff).
lock: install
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --all | grep -v -i -E '^(pip|setuptools|wheel)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
