# Tayori: `make serve` runs it on embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint format messages bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/tayori serve

# The suite runs on SQLite; with TAYORI_TEST_POSTGRES_URL set, the data-layer and API tests run
# again on PostgreSQL. In CI (CI=true) a missing PostgreSQL or browser fails instead of skipping.
test: $(STAMP)
	$(PY) -m pytest -q
	@if [ -n "$$TAYORI_TEST_POSTGRES_URL" ]; then \
	  echo "== PostgreSQL =="; \
	  TAYORI_DATABASE_URL="$$TAYORI_TEST_POSTGRES_URL" $(PY) -m pytest -q -m "not browser"; \
	elif [ "$$CI" = "true" ]; then \
	  echo "CI=true but TAYORI_TEST_POSTGRES_URL is not set"; exit 1; \
	else \
	  echo "TAYORI_TEST_POSTGRES_URL not set: PostgreSQL run skipped (see README)"; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check tayori tests

format: $(STAMP)
	$(VENV)/bin/ruff format tayori tests

messages: $(STAMP)
	cd tayori && ../$(PY) ../manage.py makemessages -l ja --no-obsolete && ../$(PY) ../manage.py compilemessages

bench: $(STAMP)
	$(VENV)/bin/tayori bench members

clean:
	rm -rf $(VENV) var
