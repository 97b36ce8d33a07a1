# Trust Ledger: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
# The virtualenv lives outside the source tree and .venv links to it, so that what searches the
# tree (grep -r, the duplicates tool, the project's checks) reads the project's own files, not
# its libraries' (whose source names settings this project must never set, such as the
# eventsourcing library's POSTGRES_ENABLE_DB_FUNCTIONS). One per clone, named after its path.
VENV_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/trustledger/venv-$(shell printf '%s' '$(CURDIR)' | sha256sum | cut -c1-12)
PY := $(VENV)/bin/python
PORT ?= 8000
PGDIR ?= $(CURDIR)/var/test-postgres
PYTEST_ARGS ?=

.PHONY: install install-system run test lint bench clean

# Also remade when this recipe changes (a .venv from before it moved out is a directory).
$(VENV)/.installed: pyproject.toml Makefile
	if [ -d $(VENV) ] && [ ! -L $(VENV) ]; then rm -rf $(VENV); fi
	python3 -m venv $(VENV_HOME)
	ln -sfn $(VENV_HOME) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The demo loads once: on a ledger that holds it already, `trustledger demo` says so and does nothing
# (and on one holding part of it, from a run stopped halfway, says so and stops: remove var/trustledger.sqlite3).
run: install
	$(VENV)/bin/trustledger migrate
	$(VENV)/bin/trustledger demo --url http://127.0.0.1:$(PORT)/ui/
	$(VENV)/bin/trustledger serve --host 127.0.0.1 --port $(PORT)

# The browser tests drive Debian's Chromium (never a downloaded one), and the README's examples
# run with curl; installed once, as root (CI) or through sudo, without questions.
install-system:
	@missing=$$(for tool in chromium curl; do [ -x /usr/bin/$$tool ] || echo $$tool; done); \
	if [ -n "$$missing" ]; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing </dev/null; \
	fi

# Starts a throwaway PostgreSQL, runs the whole suite on PostgreSQL and SQLite (the browser tests
# in headless Chromium included), stops the server.
test: install install-system
	url=$$(tools/throwaway-postgres start $(PGDIR) | tail -n 1); \
	trap 'tools/throwaway-postgres stop $(PGDIR)' EXIT; \
	TRUSTLEDGER_TEST_POSTGRES_URL=$$url $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy domain api projections tests
	$(VENV)/bin/mypy --explicit-package-bases bench/*.py bench/baseline/*.py

# Each script prints its figures next to a baseline measured in the same run.
bench: install
	url=$$(tools/throwaway-postgres start $(CURDIR)/var/bench-postgres | tail -n 1); \
	trap 'tools/throwaway-postgres stop $(CURDIR)/var/bench-postgres' EXIT; \
	for script in append read_models trust chart gate encryption sealed_reads http_ingest http_gate; do \
	  TRUSTLEDGER_BENCH_POSTGRES_URL=$$url $(PY) bench/$$script.py; done

clean:
	rm -rf "$$(readlink -f $(VENV))" $(VENV) var build *.egg-info
