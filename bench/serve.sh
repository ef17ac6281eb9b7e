#!/usr/bin/env bash
# Prediction serving, side by side in one run on this machine: the demo's inference
# pipeline (standardize with the training figures, then least squares on the diabetes
# data's ten features), a raw patient row from the file per request, answered by
#   1. `mlflow models serve`: the same pipeline (StandardScaler + LinearRegression) fitted
#      by scikit-learn and saved by mlflow.sklearn, as MLflow serves it (one uvicorn
#      worker, its default);
#   2. `kiln serve`, the pipeline from the sandbox: both stages wasm (standardize, then
#      linear-runner);
#   3. `kiln serve`, the pipeline with the runner's native twin (standardize stays
#      sandboxed);
#   4. and 5. `kiln serve`, the model alone (registered from the same run with
#      `serve: [predict]`, sent an already-scaled row), wasm and native: what the
#      preprocessing stage costs is the difference.
# Load: wrk (Debian's package) with 2 threads at fixed concurrency, one row per request,
# MLflow's dataframe_split body for every server, after a warm-up. The load generator
# shares the machine with the server. Prints a Markdown table.
#
# The Kiln servers take turns, ROUNDS times each (this machine is noisy); the summary
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

# The models: Kiln's pipeline from its demo, and the model alone registered from the same
# workflow (every step cached); MLflow's pipeline fitted by scikit-learn on the same file.
"$kiln" demo >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; exit 1; }
mkdir -p "$work/model-only"
cp -r examples/data "$work/model-only/data"
sed -e 's/^  model: diabetes-progression/  model: diabetes-model-only/' \
    -e 's/^  serve: \[scale-test, predict\]/  serve: [predict]/' \
    examples/quickstart.yaml >"$work/model-only/quickstart.yaml"
grep -q '^  serve: \[predict\]' "$work/model-only/quickstart.yaml"
"$kiln" run "$work/model-only/quickstart.yaml" >"$work/model-only.log" 2>&1 ||
  { cat "$work/model-only.log" >&2; exit 1; }
"$server_py" - "$work/mlflow-model" "$work/body.json" "$work/scaled.json" <<'PY'
import json, sys
import pandas as pd
import mlflow.sklearn
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
df = pd.read_csv("examples/data/diabetes.csv")
x, y = df.drop(columns=["progression"]), df["progression"]
pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(x, y)
mlflow.sklearn.save_model(pipeline, sys.argv[1], input_example=x.head(1))
# The file's first patient, raw; and scaled, for the model alone.
raw = [float(v) for v in x.iloc[0]]
scaled = [float(v) for v in pipeline[0].transform(x.head(1))[0]]
for path, row in ((sys.argv[2], raw), (sys.argv[3], scaled)):
    json.dump({"dataframe_split": {"columns": list(x.columns), "data": [row]}}, open(path, "w"))
PY

cat >"$work/post.lua" <<'LUA'
if os.getenv("BENCH_BODY") ~= "-" then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local f = assert(io.open(os.getenv("BENCH_BODY")))
  wrk.body = f:read("*a")
  f:close()
end
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

# load NAME URL PID [BODY]: warm up, then measure; prints a table row and keeps the figures.
# BODY `-` sends GETs.
declare -A rate p99
load() {
  local name=$1 url=$2 pid=$3 body=${4:-$work/body.json} answer
  if [ "$body" = - ]; then
    answer=$(curl -sf "$url")
  else
    answer=$(curl -sf -X POST -H 'Content-Type: application/json' --data @"$body" "$url")
  fi
  BENCH_BODY=$body wrk -t2 -c"$conns" -d2s -s "$work/post.lua" "$url" >/dev/null
  read -r r p50 p99v n errors < <(BENCH_BODY=$body wrk -t2 -c"$conns" -d"${secs}s" --latency \
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

# kiln_serve NAME MODEL BODY CONFIG: MODEL's candidate behind `kiln serve` with CONFIG
# (MODEL `-`: the health probe, the floor HTTP sets on this machine).
kiln_serve() {
  local name=$1 model=$2 body=$3 config=$4
  printf '%s\n' "$config" >"$work/kiln-server.toml"
  "$kiln" serve --addr 127.0.0.1:0 --config "$work/kiln-server.toml" >"$work/kiln.out" 2>"$work/kiln.err" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on" "$work/kiln.out" && break; sleep 0.1; done
  local url
  url="$(sed -n 's/^listening on //p' "$work/kiln.out")/v1/models/$model/candidate/predict"
  [ "$model" = - ] && url="$(sed -n 's/^listening on //p' "$work/kiln.out")/healthz" || wait_for "$url"
  load "$name" "$url" "${pids[-1]}" "$body"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}
kiln_serve "kiln serve, GET /healthz (no model)" - - ""
pipeline=diabetes-progression alone=diabetes-model-only
for _ in $(seq 1 "$rounds"); do
  kiln_serve "kiln serve, pipeline (wasm)" $pipeline "$work/body.json" ""
  kiln_serve "kiln serve, pipeline (native runner)" $pipeline "$work/body.json" \
    $'[serving.models.diabetes-progression]\nrunner = "native"'
  kiln_serve "kiln serve, model alone (wasm)" $alone "$work/scaled.json" ""
  kiln_serve "kiln serve, model alone (native)" $alone "$work/scaled.json" \
    $'[serving.models.diabetes-model-only]\nrunner = "native"'
done

"$server_py" - "${rate[mlflow models serve]}" \
  "${rate[kiln serve, pipeline (wasm)]}" "${p99[kiln serve, pipeline (wasm)]}" \
  "${rate[kiln serve, pipeline (native runner)]}" "${p99[kiln serve, pipeline (native runner)]}" \
  "${rate[kiln serve, model alone (wasm)]}" "${p99[kiln serve, model alone (wasm)]}" \
  "${rate[kiln serve, model alone (native)]}" "${p99[kiln serve, model alone (native)]}" <<'PY'
import statistics, sys
m = [statistics.median(map(float, a.split())) for a in sys.argv[1:]]
mlflow, wasm, wasm_p99, native, native_p99, alone, alone_p99, alone_native, alone_native_p99 = m
print()
print(f"Medians, requests/s (p99 ms): pipeline wasm {wasm:,.0f} ({wasm_p99:.2f}); pipeline with "
      f"the native runner {native:,.0f} ({native_p99:.2f}); model alone wasm {alone:,.0f} "
      f"({alone_p99:.2f}); model alone native {alone_native:,.0f} ({alone_native_p99:.2f}); "
      f"mlflow pipeline {mlflow:,.0f}.")
print(f"model alone / pipeline: **{alone / wasm:.2f}×** (wasm), "
      f"**{alone_native / native:.2f}×** (native runner); "
      f"kiln pipeline (wasm) / mlflow pipeline: **{wasm / mlflow:.0f}×** the throughput")
PY
