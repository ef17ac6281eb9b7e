#!/usr/bin/env bash
# The Python environment the tests need: a venv in target/python with the official MLflow
# client, from PyPI. Idempotent: does nothing when the pinned version is already there.
# Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

MLFLOW_VERSION=3.17.2
venv=target/python
py=$venv/bin/python

if ! "$py" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$MLFLOW_VERSION')" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "mlflow-skinny==$MLFLOW_VERSION" >&2
fi
echo "$PWD/$py"
