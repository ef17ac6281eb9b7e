#!/usr/bin/env bash
# The Python environments, from PyPI, each a venv under target/. Idempotent: does nothing
# when the pinned version is already there. Prints the venv's python.
#
#   scripts/python-env.sh          the official MLflow client (mlflow-skinny): the tests
#   scripts/python-env.sh server   the whole of MLflow, for `mlflow server`: the benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

MLFLOW_VERSION=3.17.2
. scripts/lib.sh
target=$(kiln_target)
case "${1:-client}" in
  client) venv=$target/python package="mlflow-skinny==$MLFLOW_VERSION" ;;
  server) venv=$target/python-server package="mlflow==$MLFLOW_VERSION" ;;
  *) echo "usage: $0 [client|server]" >&2; exit 2 ;;
esac
py=$venv/bin/python

if ! "$py" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$MLFLOW_VERSION')" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "$package" >&2
fi
echo "$py"
