# WattChain: `make demo` runs the market, `make test` runs every test. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Outside the repository, so rebuilds (and CI on the same machine) are incremental.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/wattchain/target
# Debian's Rust 1.96 builds both the node and the wasm runtime, so the sysroot matches.
RUST_ENV := PATH=/usr/bin:$$PATH CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc \
	WASM_BUILD_RUSTFLAGS="-C link-arg=--allow-undefined" WASM_BUILD_WORKSPACE_HINT=$(CURDIR)/runtime-config
NODE_BIN := $(CARGO_TARGET_DIR)/debug/wattchain-node

.PHONY: setup toolchain python browser web node check test test-rust lint-rust test-python test-chain demo bench loadtest weights

setup: toolchain python browser web

toolchain:
	@runtime-config/scripts/install-toolchain.sh

# Debian's Chromium, for the test that opens the web page in a real browser.
browser:
	@command -v chromium >/dev/null || { echo "[browser] installing chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The web app: its npm packages (Chart.js, @polkadot's crypto) and esbuild, bundled into
# api/static/app, which the API serves. Nothing is fetched from a CDN when the page runs.
WEB_BUNDLE := api/static/app/main.js
web: $(WEB_BUNDLE)

WEB_MODULES := api/web/node_modules/.package-lock.json
$(WEB_MODULES): api/web/package.json api/web/package-lock.json
	@command -v npm >/dev/null || { echo "[web] installing Node.js and npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@echo "[web] npm ci (Chart.js, @polkadot's api, keyring and crypto, esbuild)"
	@cd api/web && npm ci --no-audit --no-fund --loglevel=error >/dev/null

$(WEB_BUNDLE): $(WEB_MODULES) $(wildcard api/web/src/*)
	@echo "[web] esbuild bundles the web app into api/static/app"
	@cd api/web && npm run -s build

python: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml
	@echo "[python] installing WattChain and its dependencies into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e ".[test,dev]"
	@touch $@

# The quick loop, no node needed: lint, format, types, import contracts, every test not marked `chain`.
check: python toolchain $(WEB_MODULES)
	@echo "[check] rustfmt, ruff, ruff format, mypy, import contracts, the web app's unit tests" >&2
	@cd runtime-config && $(RUST_ENV) cargo fmt --all --check 2>/dev/null
	@$(VENV)/bin/ruff check --quiet .
	@$(VENV)/bin/ruff format --check --quiet .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache | tail -n 1
	@cd api/web && node --test --test-reporter=dot test/
	@$(PY) -m pytest -q -m "not chain"

# Builds the node (and its wasm runtime); the last line printed is the binary's path.
node: toolchain
	@echo "[node] cargo build (cold: about 30 min on 2 cores; incremental afterwards)" >&2
	@cd runtime-config && $(RUST_ENV) cargo build --locked -p wattchain-node >&2
	@echo "$(NODE_BIN)"

# The pallet's unit and randomized tests, then its benchmarks run once each as tests, then the
# runtime's integrity tests (the configured maxima fit a block with the runtime's weights).
test-rust: toolchain
	@cd runtime-config && $(RUST_ENV) SKIP_WASM_BUILD=1 cargo test --locked -p pallet-energy-trading
	@cd runtime-config && $(RUST_ENV) SKIP_WASM_BUILD=1 cargo test --locked -p pallet-energy-trading \
		--features runtime-benchmarks benchmarking::
	@cd runtime-config && $(RUST_ENV) SKIP_WASM_BUILD=1 cargo test --locked -p wattchain-runtime --lib \
		integrity

# rustfmt (runtime-config/.rustfmt.toml) and clippy on the pallet. The whole workspace is
# clippy-clean too, but linting it adds ~4.5 min to a cold CI and the pallet ~1.5 min.
lint-rust: toolchain
	@cd runtime-config && $(RUST_ENV) cargo fmt --all --check
	@cd runtime-config && $(RUST_ENV) SKIP_WASM_BUILD=1 cargo clippy --locked -p pallet-energy-trading \
		--all-targets -- -D warnings

# Every Python test; test-chain only those that need the node (marked `chain`).
test-python: python web node
	@WATTCHAIN_NODE=$(NODE_BIN) $(PY) -m pytest -q

test-chain: python web node
	@WATTCHAIN_NODE=$(NODE_BIN) $(PY) -m pytest -q -m chain

# Everything: the quick checks first (they include every test that needs no node), then the
# node, the pallet's tests and lints, and the Python tests that run against the node.
test: setup check node test-rust lint-rust test-chain

demo: setup node
	@WATTCHAIN_NODE=$(NODE_BIN) $(VENV)/bin/wattchain demo --intervals 3

# Regenerates the runtime's weights for the market pallet by running its benchmarks in the wasm runtime
# on an optimized (`release`) node built with the runtime-benchmarks feature, in its own target
# folder, and the database weights on the node's own database (ParityDB) of a populated chain:
# the chain benchmark's interval of 10,000 orders, kept in BENCH_STATE.
BENCH_TARGET := $(HOME)/.cache/wattchain/target-bench
BENCH_NODE := $(BENCH_TARGET)/release/wattchain-node
BENCH_STATE := $(BENCH_TARGET)/storage-market
weights: toolchain python
	@# The storage benchmark's own test runtime cannot find itself through our workspace hint;
	@# `benchmark storage` does not need its wasm.
	@cd runtime-config && $(RUST_ENV) SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1 \
		CARGO_TARGET_DIR=$(BENCH_TARGET) cargo build --locked --release \
		-p wattchain-node --features runtime-benchmarks >&2
	$(BENCH_NODE) benchmark pallet --chain dev --pallet pallet_energy_trading \
		--extrinsic '*' --steps 10 --repeat 10 --wasm-execution compiled \
		--output runtime-config/runtime/src/weights/pallet_energy_trading.rs
	rm -rf $(BENCH_STATE)
	$(VENV)/bin/wattchain bench chain --orders 10000 --node-bin $(BENCH_NODE) --data $(BENCH_STATE) >&2
	@# Per-key figures: p95 leaves out the 4.7 MB runtime code, which no call reads through the
	@# pallet; x2 is the margin for a trie deeper than this chain's. Writes are committed 100
	@# at a time, as a block commits its writes together (our heavy blocks write thousands).
	$(BENCH_NODE) benchmark storage --dev --state-version 1 --database paritydb --batch-size 100 \
		--warmups 2 --metric p95 --mul 2 --base-path $(BENCH_STATE)/chain \
		--weight-path runtime-config/runtime/src/weights/
	sed -i 's/sp_weights::/frame_support::weights::/' runtime-config/runtime/src/weights/paritydb_weights.rs
	@cd runtime-config && $(RUST_ENV) cargo fmt --all

bench: python
	@$(PY) -m matcher.bench

# Order intake under load, the issue's targets as thresholds: a fresh market on free loopback
# ports, Locust (load_tests/intake.py) at the rate for 10 minutes, every acknowledged order
# followed to the chain; one JSON line, exit 1 below a threshold. `.ci/run` runs a short one
# (tests/wattchain/test_bench_api.py). Change it with LOADTEST="--rate 300 --hold 60 ...".
LOADTEST ?= --rate 1000 --ramp 30 --hold 600 --burst 10 --min-orders-per-s 1000 --max-p99-ms 250 \
	--max-relay-lag-p99-blocks 2
loadtest: python node
	@WATTCHAIN_NODE=$(NODE_BIN) $(VENV)/bin/wattchain bench api $(LOADTEST)
