# The two commands of the project. Both are safe to run on a fresh machine: they install what
# the build needs (idempotently) before building.
#
#   make run    the main job (see README.md)
#   make test   formatting, lints and the whole test suite (what CI runs)

CARGO ?= cargo

.PHONY: run test setup

setup:
	@./scripts/setup.sh

run: setup
	$(CARGO) run --release -p experiments --bin combustion -- run --profile quick

test: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p kernels --all-targets --no-default-features -- -D warnings
	$(CARGO) test --workspace
	$(CARGO) test -p kernels --no-default-features
