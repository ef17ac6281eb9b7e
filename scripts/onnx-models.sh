#!/usr/bin/env bash
# Real ONNX models for the ONNX tests and benchmark, made with public PyPI tools
# (scikit-learn, skl2onnx, onnx) and checked against onnxruntime's own outputs.
#
#   scripts/onnx-models.sh [OUT_DIR]     default: target/onnx-models under the repository
#
# A relative OUT_DIR is taken from the caller's working directory. Makes or updates the venv
# target/toolchains/onnx-venv at the pinned versions below, then runs
# tests/onnx/make_models.py OUT_DIR, which writes the models, their reference cases
# (NAME.cases.json) and the negative fixtures. Idempotent: a venv already at the pins is left
# alone, and so is an OUT_DIR already made by the same make_models.py at the same pins, so a
# second run takes about a second. Prints one line per step on stderr, and OUT_DIR's absolute
# path on stdout. The venv's python also runs bench/onnx_ort.py and the tests' scikit-learn
# references (tests/pipelines/sklearn_reference.py).
set -euo pipefail

say() { echo "onnx-models: $*" >&2; }
die() { say "error: $*"; exit 1; }

out=${1:-}
if [ -n "$out" ]; then
  mkdir -p "$out" || die "cannot create $out"
  out=$(cd "$out" && pwd)
fi
cd "$(dirname "$0")/.."
. scripts/lib.sh
target=$(kiln_target)
out=${out:-$target/onnx-models}

NUMPY=2.4.6
SCIKIT_LEARN=1.9.1
SKL2ONNX=1.20.0
ONNX=1.23.2
ONNXRUNTIME=1.32.0

venv=$target/toolchains/onnx-venv
py=$venv/bin/python
pins="numpy==$NUMPY scikit-learn==$SCIKIT_LEARN skl2onnx==$SKL2ONNX onnx==$ONNX onnxruntime==$ONNXRUNTIME"

# --- the venv ---
if [ ! -x "$py" ] || [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$pins" ]; then
  say "installing $pins (PyPI) into $venv"
  command -v python3 >/dev/null || die "python3 not found on PATH"
  rm -f "$venv/.pinned"
  python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
  # shellcheck disable=SC2086
  "$py" -m pip install --quiet --disable-pip-version-check $pins >&2 \
    || die "pip install failed for: $pins"
  echo "$pins" > "$venv/.pinned"
else
  say "venv $venv is at the pinned versions"
fi

# --- the models ---
script=tests/onnx/make_models.py
[ -f "$script" ] || die "$script is missing"
stamp=$( (sha256sum "$script" | cut -d' ' -f1; echo "$pins") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "making models in $out"
  mkdir -p "$out" || die "cannot create $out"
  rm -f "$out/.stamp"
  PYTHONHASHSEED=0 "$py" "$script" "$out" >&2 || die "$script failed (see above)"
  echo "$stamp" > "$out/.stamp"
else
  say "models in $out are up to date"
fi

echo "$out"
