#!/usr/bin/env bash
# The runtime for devices (scripts/edge.sh) against the full build, in one run, on the
# demo's model (diabetes-progression, linear-runner) bundled by the full build:
#   - the stripped binary: the runtime for x86_64 and for aarch64, the full build stripped;
#   - RSS of a server: idle (listening, nothing loaded), then after PREDICTIONS requests,
#     `kiln bundle serve` on the runtime against `kiln serve` on the full build;
#   - cold start to the first prediction: one new process per run, `kiln bundle predict`
#     on the runtime against `kiln model predict` on the full build (its compiled-code
#     cache warm), the median of RUNS;
#   - predict latency on one warm instance (`--repeat`): the bundle precompiled by
#     Cranelift against the Pulley bundle (wasmtime's interpreter).
# Prints a Markdown table.
#
#   bench/edge.sh [RUNS] [PREDICTIONS]      (default 40 and 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
predictions=${2:-1000}

x86=$(scripts/edge.sh)
arm=$(scripts/edge.sh aarch64-unknown-linux-gnu)
cargo build --release --locked -p kiln --bin kiln >&2
kiln=$PWD/target/release/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The full build registers the demo's model and bundles it, signed.
export KILN_SEED=$PWD/registry-data
full() { KILN_HOME=$work/full "$kiln" "$@"; }
full demo >/dev/null 2>&1
full key generate >/dev/null
public=$(full key list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["public"])')
host=$(rustc -vV | sed -n 's/^host: //p')
full bundle model diabetes-progression@candidate --target "$host" -o "$work/app.kiln" >/dev/null
full bundle model diabetes-progression@candidate --target pulley64 -o "$work/pulley.kiln" >/dev/null
KILN_HOME=$work/device KILN_SEED=off "$x86" key trust "$public" --name bench >/dev/null

strip -o "$work/kiln-full" "$kiln"

python3 - "$work" "$kiln" "$x86" "$arm" "$runs" "$predictions" <<'EOF'
import json, os, statistics, subprocess, sys, time, urllib.request

work, kiln, x86, arm, runs, predictions = sys.argv[1:4] + [sys.argv[4], int(sys.argv[5]), int(sys.argv[6])]
full_env = dict(os.environ, KILN_HOME=f"{work}/full")
device_env = dict(os.environ, KILN_HOME=f"{work}/device", KILN_SEED="off")
names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
row = [0.038, 0.0507, 0.0617, 0.0219, -0.0442, -0.0348, -0.0434, -0.0026, 0.0199, -0.0176]
doc = {"$kiln": "value/1", "kind": "table",
       "columns": [{"name": n, "type": "float64", "values": [v]} for n, v in zip(names, row)]}
rows = f"{work}/rows.json"
with open(rows, "w") as f:
    json.dump(doc, f)
mib = lambda b: b / (1 << 20)

def cold(cmd, env):
    took = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        took.append((time.perf_counter() - start) * 1e3)
    return statistics.median(took)

def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

def serve(cmd, env):
    p = subprocess.Popen(cmd + ["--addr", "127.0.0.1:0"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = p.stdout.readline().strip().removeprefix("listening on ")
    time.sleep(0.5)
    idle = rss(p.pid, "VmRSS")
    body = json.dumps({"rows": [dict(zip(names, row))]}).encode()
    for _ in range(predictions):
        req = urllib.request.Request(f"{url}/v1/models/diabetes-progression/candidate/predict",
                                     data=body, headers={"content-type": "application/json"})
        urllib.request.urlopen(req).read()
    busy, peak = rss(p.pid, "VmRSS"), rss(p.pid, "VmHWM")
    p.terminate()
    p.wait()
    return idle, busy, peak

def latency(bundle):
    out = subprocess.run([x86, "bundle", "predict", bundle, "-i", f"features={rows}",
                          "--repeat", "20000", "--json"],
                         env=device_env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["latency_us"]["median"]

size = {k: os.path.getsize(p) / 1e6 for k, p in
        [("x86", x86), ("arm", arm), ("full", f"{work}/kiln-full")]}
app, portable = f"{work}/app.kiln", f"{work}/pulley.kiln"
cold_rt = cold([x86, "bundle", "predict", app, "-i", f"features={rows}"], device_env)
# The full build's first prediction fills its compiled-code cache; then it is warm.
model = [kiln, "model", "predict", "diabetes-progression@candidate", "-i", f"features={rows}"]
subprocess.run(model, env=full_env, check=True, stdout=subprocess.DEVNULL)
cold_full = cold(model, full_env)
rt_serve = serve([x86, "bundle", "serve", app], device_env)
full_serve = serve([kiln, "serve"], full_env)
cranelift, pulley = latency(app), latency(portable)

print(f"| Figure (edge runtime vs full build) | Runtime | Full build | Ratio |")
print(f"|---|---:|---:|---:|")
print(f"| stripped binary, x86_64 (target <= 8 MB) | {size['x86']:.2f} MB | {size['full']:.2f} MB | {size['x86'] / size['full']:.2f} |")
print(f"| stripped binary, aarch64 (target <= 8 MB) | {size['arm']:.2f} MB | | |")
print(f"| RSS serving, idle (target <= 16 MiB) | {rt_serve[0]:.1f} MiB | {full_serve[0]:.1f} MiB | {rt_serve[0] / full_serve[0]:.2f} |")
print(f"| RSS after {predictions} predictions (peak) | {rt_serve[1]:.1f} MiB ({rt_serve[2]:.1f}) | {full_serve[1]:.1f} MiB ({full_serve[2]:.1f}) | {rt_serve[1] / full_serve[1]:.2f} |")
print(f"| cold start to first prediction, median of {runs} (target <= 20 ms) | {cold_rt:.1f} ms | {cold_full:.1f} ms | {cold_rt / cold_full:.2f} |")
print(f"| predict, one warm instance: Cranelift code | {cranelift:.2f} us | | |")
print(f"| predict, one warm instance: Pulley (interpreter) | {pulley:.2f} us | | {pulley / cranelift:.1f}x Cranelift |")
EOF
