# Thin wrappers over the scripts and cargo commands CI runs (see README.md).
# `make test` is what .ci/run runs.

.PHONY: help run run-split test bench fuzz lint fmt build release

help:
	@echo "make run      the whole service in one process on embedded backends, demo data (Ctrl-C stops)"
	@echo "make run-split  the split binaries against their own Redis, PostgreSQL and IPFS"
	@echo "make test     the whole test suite against its own Redis, PostgreSQL and IPFS (as CI)"
	@echo "make bench    benchmarks: export throughput vs baselines, memory, API latency, scaling (BENCH_SIZES=100000 for a quick run)"
	@echo "make fuzz     run each cargo-fuzz target for 30 s (make fuzz FUZZ_SECONDS=300 for longer); not part of make test"
	@echo "make lint     rustfmt check and clippy, warnings denied"
	@echo "make fmt      format the code"
	@echo "make build    debug build of the workspace"
	@echo "make release  release build of the workspace"

run:
	cargo run --release --locked -p bulk-cli -- dev

run-split:
	scripts/run-dev.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --locked

release:
	cargo build --release --locked
