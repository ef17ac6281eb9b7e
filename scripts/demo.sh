#!/usr/bin/env bash
# Kiln's end-to-end demo, from a fresh clone: builds the `kiln` binary, then runs the
# quickstart workflow (examples/quickstart.yaml) with `kiln demo`: read the diabetes
# dataset, validate it, split it, train least squares, predict, evaluate, and register the
# model, every step a sandboxed plugin resolved from the registry (seeded on first use from
# registry-data/). It then runs the workflow again (every step from the cache), replays the
# first run to check it reproduces, shows the lineage and the registered model (its inference
# pipeline: scaling, then the linear model), and serves it over HTTP: the first patient of
# the data file, in the file's units, through Kiln's API and the Open Inference Protocol.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "setting up: the kiln binary (the standard plugins come from the registry seed)"
cargo build --release --locked -p kiln

export KILN_HOME="$PWD/target/demo/home"
export KILN_SEED="$PWD/registry-data"
kiln=target/release/kiln
rm -rf "$KILN_HOME"

step "kiln demo: the quickstart workflow, end to end"
"$kiln" demo --jobs 2

step "again: nothing changed, so every step comes from the cache"
"$kiln" run "$KILN_HOME/demo/quickstart.yaml" | tail -1

step "replay the first run without the cache: does every output digest match?"
first=$("$kiln" runs list | awk 'NR==2 {print $1}')
"$kiln" replay "$first" 2>/dev/null

step "lineage of the first run (plugin digests, inputs and outputs of each step)"
"$kiln" runs show "$first" | grep -v "^  check "

step "the registered model"
"$kiln" model show diabetes-progression

step "serve it: kiln serve, one prediction over /v1 and one over the Open Inference Protocol"
"$kiln" serve --addr 127.0.0.1:0 > "$KILN_HOME/serve.out" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$KILN_HOME/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$KILN_HOME/serve.out")
# A real patient: the file's first row, in its own units, without the answer.
data="$KILN_HOME/demo/data/diabetes.csv"
row=$(awk -F, '{ sub(/\r$/, "") } NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i }
  NR == 2 { for (i = 1; i <= NF; i++) if (name[i] != "progression") printf "%s\"%s\": %s", (n++ ? ", " : ""), name[i], $i }' "$data")
truth=$(awk -F, '{ sub(/\r$/, "") } NR == 1 { for (i = 1; i <= NF; i++) if ($i == "progression") c = i } NR == 2 { print $c }' "$data")
values=$(awk -F, '{ sub(/\r$/, "") } NR == 1 { for (i = 1; i <= NF; i++) if ($i == "progression") c = i }
  NR == 2 { for (i = 1; i <= NF; i++) if (i != c) printf "%s%s", (n++ ? ", " : ""), $i }' "$data")
echo "the first patient of $data: {$row}"
echo "POST $url/v1/models/diabetes-progression/candidate/predict"
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"rows\": [{$row}]}" \
  "$url/v1/models/diabetes-progression/candidate/predict"
echo
echo "POST $url/v2/models/diabetes-progression/versions/candidate/infer"
curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"inputs\": [{\"name\": \"rows\", \"datatype\": \"FP64\", \"shape\": [1, 10], \"data\": [$values]}]}" \
  "$url/v2/models/diabetes-progression/versions/candidate/infer"
echo
echo "(the prediction is the disease progression one year on, on the file's scale of 25 to"
echo " 346; this patient's measured progression is $truth. The registered version scales the"
echo " raw measurements with the training rows' figures before the linear model: see above.)"
kill -TERM "$server" && wait "$server"

step "a broken workflow is refused before anything runs, each error at its line"
broken="$KILN_HOME/demo/broken.yaml"
sed -e 's/split.train }/split.trian }/' -e 's/test_fraction: 0.2/test_fraktion: 0.2/' \
  "$KILN_HOME/demo/quickstart.yaml" > "$broken"
"$kiln" validate "$broken" 2>&1 || true

step "done: see \`$kiln --help\`; the data directory is $KILN_HOME"
