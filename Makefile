# Two commands: `make demo` (set up and run the demo) and `make test` (set up and run the tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VENDOR := cordon/web/static/vendor
PYTEST_ARGS ?=

.PHONY: demo test install install-dev assets lint test-sqlite test-postgres messages clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/activate pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e '.[dev,spark]'
	touch $@

install: $(VENV)/.installed assets
install-dev: $(VENV)/.installed-dev assets

# Front-end libraries come from the npm registry at set-up and are served by Cordon itself.
assets: $(VENDOR)/htmx.min.js $(VENDOR)/echarts.min.js

frontend/node_modules/.package-lock.json: frontend/package.json
	cd frontend && npm install --no-audit --no-fund --silent

$(VENDOR)/htmx.min.js $(VENDOR)/echarts.min.js: frontend/node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp frontend/node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp frontend/node_modules/echarts/dist/echarts.min.js $(VENDOR)/echarts.min.js

demo: install
	$(VENV)/bin/cordon demo

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

test-sqlite: install-dev
	CORDON_DATA_DIR=$(CURDIR)/var/test-sqlite DATABASE_URL= $(VENV)/bin/pytest $(PYTEST_ARGS)

test-postgres: install-dev
	@if [ -n "$$CORDON_TEST_DATABASE_URL" ]; then \
		echo "== PostgreSQL: $$CORDON_TEST_DATABASE_URL"; \
		CORDON_DATA_DIR=$(CURDIR)/var/test-postgres DATABASE_URL="$$CORDON_TEST_DATABASE_URL" $(VENV)/bin/pytest $(PYTEST_ARGS); \
	else \
		echo "== PostgreSQL run skipped: CORDON_TEST_DATABASE_URL is not set"; \
	fi

test: install-dev lint test-sqlite test-postgres

messages:
	cd cordon && ../$(VENV)/bin/django-admin makemessages -l zh_Hans --no-obsolete && ../$(VENV)/bin/django-admin compilemessages -l zh_Hans

clean:
	rm -rf $(VENV) frontend/node_modules $(VENDOR) var
