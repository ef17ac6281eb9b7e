#!/usr/bin/env bash
# What the tests take from the package registries, with nothing compiled: Debian's packages
# (clang and WASI libc for C plugins, the aarch64 cross compiler and qemu-user for the
# device runtime), the Python venvs (the plugin toolchains, the MLflow client, the ONNX model
# makers and their models) and npm's componentize-js. Idempotent: a second run takes a few
# seconds. The tests run each of these scripts themselves when they need it; CI runs this
# one beside its cargo build, so the downloads cost no build time. What is left needs cargo
# (wit-bindgen's CLI: scripts/toolchains.sh; the device runtimes: scripts/edge.sh).
#
# Prints one line per step, with its time, on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local t0=$SECONDS
  "$@" >/dev/null
  echo "setup: $((SECONDS - t0))s $*" >&2
}

step scripts/toolchains.sh --no-cargo
step scripts/edge.sh --packages-only aarch64-unknown-linux-gnu
step scripts/python-env.sh
step scripts/python-env.sh schemathesis
step scripts/onnx-models.sh
