# GK — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gk-installed
DATA_DIR ?= ./var
# Debian packages the tests and benches use (installed by apt-get when root).
TEST_DEBS := swaks libnet-ssleay-perl libio-socket-ssl-perl openssl chromium
BENCH_DEBS := postfix dovecot-imapd

.PHONY: setup run test lint format bench sysdeps test-sysdeps clean

setup: $(STAMP)

$(STAMP): appliance/pyproject.toml
	@command -v $(PY) >/dev/null || { echo "make: $(PY) not found: install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { echo "make: venv failed: apt-get install python3.11-venv"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e 'appliance[test]'
	@touch $(STAMP)

# Install Debian packages named in $(DEBS) when missing: apt-get as root, else say which.
define need_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "make: missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi; \
	fi
endef

test-sysdeps:
	$(call need_debs,$(TEST_DEBS))

run: setup
	$(BIN)/gk serve --data-dir $(DATA_DIR)

lint: setup
	$(BIN)/ruff check appliance tests bench
	$(BIN)/ruff format --check appliance tests bench

format: setup
	$(BIN)/ruff format appliance tests bench
	$(BIN)/ruff check --fix appliance tests bench

test: setup test-sysdeps lint
	$(BIN)/pytest

bench: setup
	$(call need_debs,$(BENCH_DEBS) swaks)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/artifacts .pytest_cache
