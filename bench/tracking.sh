#!/usr/bin/env bash
# Tracking ingest, side by side in one run on this machine: an `mlflow server` with its
# default SQLite store and `kiln serve`, each fed N metric points in batches of 1,000
#   1. by the same MLflow Python client (bench/ingest_client.py),
#   2. by a native load client (benches/tracking.rs), which also measures plugins
#      tracking in-process.
# Prints Markdown tables; the README's performance section quotes them.
#
#   bench/tracking.sh [POINTS]     (default 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
points=${1:-50000}

. bench/common.sh

# MLflow, as its docs start it, on SQLite.
mlflow_port=$(free_port)
(cd "$work" && exec "$server_py" -m mlflow server --backend-store-uri "sqlite:///$work/mlflow.db" \
  --host 127.0.0.1 --port "$mlflow_port" >"$work/mlflow.log" 2>&1) &
pids+=($!)
mlflow_url=http://127.0.0.1:$mlflow_port

# Kiln.
KILN_SEED=off target/release/kiln --data-dir "$work/kiln" serve --addr 127.0.0.1:0 >"$work/kiln.out" 2>&1 &
kiln_pid=$!
pids+=($kiln_pid)

for _ in $(seq 1 120); do
  if curl -sf "$mlflow_url/health" >/dev/null && grep -q "listening on" "$work/kiln.out"; then break; fi
  sleep 1
done
curl -sf "$mlflow_url/health" >/dev/null || { cat "$work/mlflow.log" >&2; echo "mlflow server did not start" >&2; exit 1; }
kiln_url=$(sed -n 's/^listening on //p' "$work/kiln.out")
# Let MLflow's workers finish starting before anything is timed.
sleep 5

echo "| the MLflow Python client, $points points in batches of 1,000 | points/s | client CPU / wall |"
echo "|---|---|---|"
declare -A rate
for name in mlflow kiln; do
  url=$([ "$name" = mlflow ] && echo "$mlflow_url" || echo "$kiln_url")
  line=$("$server_py" bench/ingest_client.py "$url" "$points")
  read -r r share < <("$server_py" -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["points_per_s"]), round(100*d["client_cpu_s"]/d["seconds"]))' "$line")
  rate[$name]=$r
  echo "| $name | $r | $share % |"
done
echo "| **kiln / mlflow** | **$(( rate[kiln] / rate[mlflow] ))×** | |"
echo

KILN_BENCH_SERVERS="mlflow=$mlflow_url kiln=$kiln_url" KILN_BENCH_POINTS=$((points * 4)) \
  cargo bench --locked --bench tracking 2>/dev/null
echo

mlflow_rss=$(ps -o rss= --ppid "${pids[0]}" -p "${pids[0]}" | awk '{s+=$1} END {print int(s/1024)}')
kiln_rss=$(ps -o rss= -p "$kiln_pid" | awk '{print int($1/1024)}')
echo "| server memory after the runs (RSS) | MiB |"
echo "|---|---|"
echo "| mlflow server (all its processes) | $mlflow_rss |"
echo "| kiln serve | $kiln_rss |"
