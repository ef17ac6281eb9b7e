# What the benchmark scripts share; sourced from the repository root, after `set -euo
# pipefail`. It sets up the full MLflow venv (`server_py`) and the release `kiln` binary,
# a scratch directory `work` that goes away on exit, and `pids`: every process started in
# the background is put there and stopped on exit. `free_port` prints a free local port.

server_py=$(scripts/python-env.sh server)
cargo build --release --locked -p kiln --bin kiln >&2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$server_py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
