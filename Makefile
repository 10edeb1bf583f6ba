# waihu developer entry points. `make` alone lists the targets.
# Extra arguments for test/demo/bench go in ARGS, e.g. make test ARGS='-p waihu-task'.
# NATS_URL and DATABASE_URL are honoured (defaults: local NATS on 4222, PostgreSQL on 5432).

SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help demo test bench fmt fmt-check lint ci infra build clean

help:
	@echo "waihu make targets:"
	@echo "  make infra      ensure NATS (JetStream) and PostgreSQL are up (scripts/ensure-infra.sh)"
	@echo "  make build      build the release binaries (cargo build --workspace --release --bins)"
	@echo "  make test       run all tests (scripts/test.sh; nextest if installed), ARGS passed on"
	@echo "  make demo       build, run 'waihu demo' then 'waihu replay --verify' (scripts/demo.sh)"
	@echo "  make bench      run the waihu-bench load benchmark (scripts/bench.sh)"
	@echo "  make fmt        format the code (cargo fmt --all)"
	@echo "  make fmt-check  check formatting (cargo fmt --all -- --check)"
	@echo "  make lint       clippy on all targets with warnings as errors; unused deps (cargo machete)"
	@echo "  make ci         fmt-check + lint + test"
	@echo "  make clean      cargo clean"

infra:
	@bash scripts/ensure-infra.sh

build:
	$(CARGO) build --workspace --release --bins

test:
	bash scripts/test.sh $(ARGS)

demo:
	bash scripts/demo.sh $(ARGS)

bench:
	bash scripts/bench.sh $(ARGS)

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@if command -v cargo-machete >/dev/null 2>&1; then $(CARGO) machete; \
	 else echo "lint: cargo-machete not installed (cargo install cargo-machete): unused dependencies not checked"; fi

ci: fmt-check lint test

clean:
	$(CARGO) clean
