#!/usr/bin/env bash
# The Python environments, from PyPI, each a venv under target/. Idempotent: does nothing
# when the pinned version is already there. Prints the venv's python.
#
#   scripts/python-env.sh          the official MLflow client (mlflow-skinny), with
#                                  scikit-learn, pandas and skops for its sklearn flavour and
#                                  `mlflow models serve`: the tests
#   scripts/python-env.sh server   the whole of MLflow, for `mlflow server`: the benchmarks
#   scripts/python-env.sh schemathesis
#                                  schemathesis, which checks a server against its own
#                                  OpenAPI document: the tests (its CLI is bin/schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."

MLFLOW_VERSION=3.17.2
SKLEARN_VERSION=1.9.1
PANDAS_VERSION=3.1.1
SKOPS_VERSION=0.16.0   # mlflow.sklearn's default serialization
SCHEMATHESIS_VERSION=4.32.5
. scripts/lib.sh
target=$(kiln_target)
case "${1:-client}" in
  client) venv=$target/python
    packages=("mlflow-skinny==$MLFLOW_VERSION" "scikit-learn==$SKLEARN_VERSION" "pandas==$PANDAS_VERSION" "skops==$SKOPS_VERSION")
    check="import mlflow, sklearn, pandas, skops, sys
sys.exit((mlflow.__version__, sklearn.__version__, pandas.__version__, skops.__version__)
         != ('$MLFLOW_VERSION', '$SKLEARN_VERSION', '$PANDAS_VERSION', '$SKOPS_VERSION'))" ;;
  server) venv=$target/python-server packages=("mlflow==$MLFLOW_VERSION")
    check="import mlflow, sys; sys.exit(mlflow.__version__ != '$MLFLOW_VERSION')" ;;
  schemathesis) venv=$target/python-schemathesis packages=("schemathesis==$SCHEMATHESIS_VERSION")
    check="import importlib.metadata as m, sys
sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" ;;
  *) echo "usage: $0 [client|server|schemathesis]" >&2; exit 2 ;;
esac
py=$venv/bin/python

if ! "$py" -c "$check" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$py"
