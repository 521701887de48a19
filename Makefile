# Thin wrappers over the scripts and cargo commands CI runs (see README.md).
# `make test` is what .ci/run runs.

.PHONY: help run test bench lint fmt build release

help:
	@echo "make run      local Redis, PostgreSQL, IPFS, bulk-api and a worker with demo data (Ctrl-C stops)"
	@echo "make test     the whole test suite against its own Redis, PostgreSQL and IPFS (as CI)"
	@echo "make bench    benchmarks (not yet implemented)"
	@echo "make lint     rustfmt check and clippy, warnings denied"
	@echo "make fmt      format the code"
	@echo "make build    debug build of the workspace"
	@echo "make release  release build of the workspace"

run:
	scripts/run-dev.sh

test:
	scripts/test.sh

bench:
	@echo "benchmarks: not yet implemented (issue 6)" >&2
	@exit 1

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --locked

release:
	cargo build --release --locked
