#!/usr/bin/env bash
# Prediction serving, side by side in one run on this machine: the demo's model (least
# squares on the diabetes data's ten features) answered by
#   1. `mlflow models serve`: the same kind of model fitted by scikit-learn and saved by
#      mlflow.sklearn, as MLflow serves it (one uvicorn worker, its default);
#   2. `kiln serve` from the sandboxed model runner (linear-runner, wasm);
#   3. `kiln serve` from the runner's native twin (the same code in the host): the limit
#      that HTTP and the serving path set, with no sandbox.
# Load: wrk (Debian's package) with 2 threads at fixed concurrency, one row per request,
# the same body (MLflow's dataframe_split) for every server, after a warm-up. The load
# generator shares the machine with the server. Prints a Markdown table.
#
# The two Kiln servers take turns, ROUNDS times each (this machine is noisy); the summary
# compares medians.
#
#   bench/serve.sh [CONNECTIONS] [SECONDS] [ROUNDS]     (default 16, 10 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-16}
secs=${2:-10}
rounds=${3:-3}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
. bench/common.sh
kiln=$PWD/target/release/kiln
export KILN_HOME=$work/kiln

# The models: Kiln's from its demo; MLflow's fitted by scikit-learn on the same file.
"$kiln" demo >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; exit 1; }
"$server_py" - "$work/mlflow-model" "$work/body.json" <<'PY'
import json, sys
import pandas as pd
import mlflow.sklearn
from sklearn.linear_model import LinearRegression
df = pd.read_csv("examples/data/diabetes.csv")
x, y = df.drop(columns=["progression"]), df["progression"]
mlflow.sklearn.save_model(LinearRegression().fit(x, y), sys.argv[1], input_example=x.head(1))
row = [0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]
json.dump({"dataframe_split": {"columns": list(x.columns), "data": [row]}}, open(sys.argv[2], "w"))
PY

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY")))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout))
end
LUA

# wait_for URL: until it answers (MLflow takes seconds to start).
wait_for() {
  for _ in $(seq 1 240); do
    if curl -s -o /dev/null -X POST -H 'Content-Type: application/json' --data @"$work/body.json" "$1"; then return 0; fi
    sleep 0.5
  done
  echo "no answer from $1" >&2
  return 1
}

# load NAME URL PID: warm up, then measure; prints a table row and keeps the figures.
declare -A rate p99
load() {
  local name=$1 url=$2 pid=$3 answer
  answer=$(curl -sf -X POST -H 'Content-Type: application/json' --data @"$work/body.json" "$url")
  BENCH_BODY=$work/body.json wrk -t2 -c"$conns" -d2s -s "$work/post.lua" "$url" >/dev/null
  read -r r p50 p99v n errors < <(BENCH_BODY=$work/body.json wrk -t2 -c"$conns" -d"${secs}s" --latency \
    -s "$work/post.lua" "$url" | sed -n 's/^RESULT //p')
  local rss
  rss=$(ps -o rss= --ppid "$pid" -p "$pid" | awk '{s+=$1} END {print int(s/1024)}')
  rate[$name]="${rate[$name]:-} $r"
  p99[$name]="${p99[$name]:-} $p99v"
  echo "| $name | $r | $p50 | $p99v | $n | $errors | $rss |"
  echo "  $name answered: $answer" >&2
}

echo "| $conns connections, ${secs} s, one row per request | requests/s | p50 ms | p99 ms | requests | errors | RSS MiB |"
echo "|---|---|---|---|---|---|---|"

port=$(free_port)
(cd "$work" && PATH="$(dirname "$server_py"):$PATH" exec "$server_py" -m mlflow models serve -m "$work/mlflow-model" --env-manager local \
  --host 127.0.0.1 --port "$port" >"$work/mlflow.log" 2>&1) &
pids+=($!)
wait_for "http://127.0.0.1:$port/invocations" || { cat "$work/mlflow.log" >&2; exit 1; }
load "mlflow models serve" "http://127.0.0.1:$port/invocations" "${pids[-1]}"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# kiln_serve NAME CONFIG: the demo's model behind `kiln serve` with CONFIG.
kiln_serve() {
  local name=$1 config=$2
  printf '%s\n' "$config" >"$work/kiln-server.toml"
  "$kiln" serve --addr 127.0.0.1:0 --config "$work/kiln-server.toml" >"$work/kiln.out" 2>"$work/kiln.err" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on" "$work/kiln.out" && break; sleep 0.1; done
  local url
  url="$(sed -n 's/^listening on //p' "$work/kiln.out")/v1/models/diabetes-progression/candidate/predict"
  wait_for "$url"
  load "$name" "$url" "${pids[-1]}"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}
for _ in $(seq 1 "$rounds"); do
  kiln_serve "kiln serve (wasm runner)" ""
  kiln_serve "kiln serve (native twin)" $'[serving.models.diabetes-progression]\nrunner = "native"'
done

"$server_py" - "${rate[mlflow models serve]}" "${rate[kiln serve (wasm runner)]}" \
  "${rate[kiln serve (native twin)]}" "${p99[kiln serve (wasm runner)]}" "${p99[kiln serve (native twin)]}" <<'PY'
import statistics, sys
mlflow, wasm, native, wasm_p99, native_p99 = (statistics.median(map(float, a.split())) for a in sys.argv[1:])
print()
print(f"Medians: kiln (wasm) {wasm:,.0f} requests/s, p99 {wasm_p99:.2f} ms; native {native:,.0f}, "
      f"p99 {native_p99:.2f} ms; mlflow {mlflow:,.0f}.")
print(f"kiln (wasm) / mlflow: **{wasm / mlflow:.0f}×** the throughput; "
      f"native / wasm: **{native / wasm:.2f}×**")
PY
