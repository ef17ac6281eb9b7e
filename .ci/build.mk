# Everything CI compiles before the tests, as jobs under one make jobserver: each cargo
# takes its compile jobs from make's tokens instead of starting as many as there are cores,
# so the jobs fill each other's idle time (a link, an LTO pass, a crate the rest waits for)
# without running more compilers than the tokens allow. `.ci/run` runs it with
# `make -j$(($(nproc) + 1))`; each job's output and time come from .ci/job.
#
# The host's lints run in the host's job, after its build, in its target dir: they reuse its
# build scripts and proc macros (cargo locks a target dir per build, so side by side they
# would need a dir of their own and compile those again). The guests' lints have dirs of
# their own and lint only: tests/artifacts' build script builds no guests under clippy, and
# target/guests belongs to that build script alone (the seed check compares its output).
SHELL := bash
host := $(shell rustc -vV | sed -n 's/^host: //p')

.PHONY: all guests host edge tools lint-guests
all: guests host edge tools lint-guests

# The wasm guests first: tests/artifacts' build script, run by a cargo of its own (in a
# target dir of its own) as soon as the build starts. Inside the host's build, cargo would
# run it late (few units depend on it), and the host's test targets wait for it: cold, it
# started 38 minutes in and ran for 15. Its nested builds are in target/guests and
# target/guests-simd whichever cargo runs it, so the host's run finds them built.
guests:
	+@.ci/job "build: wasm guests (tests/artifacts, started first)" \
	  cargo build --release --locked -p kiln-test-artifacts --target-dir target/ci-guests

host:
	+@.ci/job "build: host and its tests (the guests job built the guests)" \
	  cargo test --release --locked --no-run --timings
	+@.ci/job "clippy: host, SDK and ml-core" \
	  cargo clippy --release --locked --all-targets -- -D warnings
	+@.ci/job "clippy: the runtime-only build (no compiler, MLflow API or marketplace)" \
	  cargo clippy --release --locked -p kiln --no-default-features -- -D warnings

edge:
	+@.ci/job "build: device runtimes, $(host) and aarch64 (scripts/edge.sh)" \
	  scripts/edge.sh $(host) aarch64-unknown-linux-gnu

tools:
	+@.ci/job "build: crates.io tools (scripts/toolchains.sh --cargo-only)" \
	  scripts/toolchains.sh --cargo-only

# Each guest is linted as it is built: the SIMD128 ones (`simd128 = true` in their
# [package.metadata.kiln]) only with SIMD128, the others without. Plugins in other
# languages (no Cargo.toml) are built by `kiln plugin build`, not cargo.
guest_dirs := $(patsubst %/Cargo.toml,%,$(wildcard plugins/*/Cargo.toml tests/guests/*/Cargo.toml))
simd_dirs := $(patsubst %/Cargo.toml,%,$(shell grep -El '^simd128 *= *true' $(addsuffix /Cargo.toml,$(guest_dirs))))
plain_dirs := $(filter-out $(simd_dirs),$(guest_dirs))
guest_lint := cargo clippy --locked --target wasm32-wasip2 --profile guest

lint-guests:
	+@.ci/job "clippy: the wasm guests, for their own target" \
	  $(guest_lint) --target-dir target/guests-lint $(addprefix -p ,$(notdir $(plain_dirs))) \
	  -- -D warnings
	+@RUSTFLAGS=-Ctarget-feature=+simd128 .ci/job \
	  "clippy: the SIMD128 guests, as they are built (their vector code is behind simd128)" \
	  $(guest_lint) --target-dir target/guests-lint-simd $(addprefix -p ,$(notdir $(simd_dirs))) \
	  -- -D warnings
