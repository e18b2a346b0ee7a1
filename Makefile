# mpwasm: the two commands a new machine needs are `make demo` and `make test`.

CARGO ?= cargo
MPWASM := target/release/mpwasm
SQUARE := target/guests/pool_square.wasm

.PHONY: setup guests build worker demo test bench fmt clean

## Install the guest toolchain (rustup target, or Debian's with MPWASM_TOOLCHAIN=debian).
setup:
	scripts/setup.sh

## Build every guest to target/guests/*.wasm.
guests: setup
	scripts/build-guests.sh

## Build the mpwasm binary, and the runtime-only worker beside it.
build: worker
	$(CARGO) build --release --workspace --all-targets

## Build target/release/mpwasm-worker (no compiler; its own Cargo invocation).
worker:
	scripts/build-worker.sh

## Install, build, and run a real pool job (plus the host-embedding example).
demo: guests build
	@echo '$$ seq 1 10 | mpwasm pool $(SQUARE) --task square -j 4 --stats'
	@seq 1 10 | $(MPWASM) pool $(SQUARE) --task square -j 4 --stats
	@echo '$$ cargo run --release --example host_map -- $(SQUARE)'
	@$(CARGO) run --release -q --example host_map -- $(SQUARE)

## Run the whole test suite (unit, integration, doc tests) against real guests.
test: guests worker
	$(CARGO) test --release --workspace

## Benchmarks W1–W8: mpwasm and CPython side by side.
bench: guests build
	$(CARGO) run --release -p mpwasm-bench

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
