# The two commands: `make demo` (install, migrate, load the demo, serve on 127.0.0.1:8000)
# and `make test` (install, then run the whole suite). `make test-fast`: without the slow and
# browser tests; `make lint`: ruff.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= $(CURDIR)/data
PYTEST_ARGS ?=
export DATA_DIR

.PHONY: install demo serve test test-fast lint chromium clean-demo

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	@touch $@

install: $(VENV)/.installed

$(DATA_DIR)/secret_key:
	@mkdir -p $(DATA_DIR)
	@$(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	@chmod 600 $@

demo: install $(DATA_DIR)/secret_key
	SECRET_KEY="$$(cat $(DATA_DIR)/secret_key)" $(PY) manage.py migrate --noinput -v 0
	SECRET_KEY="$$(cat $(DATA_DIR)/secret_key)" $(PY) manage.py load_demo
	@echo "Log in at http://$(HOST):$(PORT)/ with the users printed above."
	SECRET_KEY="$$(cat $(DATA_DIR)/secret_key)" $(PY) manage.py serve --host $(HOST) --port $(PORT)

chromium:
	@if [ -x /usr/bin/chromium ]; then \
		true; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium for the browser tests (apt-get)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium is missing, so the browser tests will be skipped."; \
		echo "Install it with: sudo apt-get install -y chromium   (Debian/Ubuntu; the tests use /usr/bin/chromium)"; \
	fi

test: install chromium
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
