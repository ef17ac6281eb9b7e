#!/usr/bin/env bash
# Kiln's end-to-end demo, from a fresh clone: builds the `kiln` binary, then trains and
# evaluates two models on the shipped datasets, one sandboxed plugin at a time, each
# plugin resolved by name from the registry (seeded from registry-data/ on first use).
# Every intermediate value is left in target/demo/ to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "setting up (the kiln binary; the standard plugins come from the registry seed)"
cargo build --release --locked -p kiln

export KILN_HOME="$PWD/target/demo/home"
export KILN_SEED="$PWD/registry-data"
kiln=target/release/kiln
out=target/demo
rm -rf "$out/diabetes" "$out/iris"
run() { "$kiln" plugin run "$@"; }

step "the registry: standard plugins, imported from registry-data/ on first use, signed and verified"
"$kiln" search
"$kiln" info linear-regression@^0.1
"$kiln" plugin inspect linear-regression

step "diabetes: read, validate, split, fit least squares, predict, evaluate"
d=$out/diabetes
run csv-reader --grant-dir examples/data:ro -c path=examples/data/diabetes.csv --out "$d/read" --log-level warn | head -8
run schema-validator -i table="$d/read/table.json" \
  -c columns=age,bmi,bp,progression -c ranges=age:0..120,bmi:10..60 -c min_rows=100 | grep -E "FAIL|finished" || true
run train-test-split -i table="$d/read/table.json" -c seed=42 -c test_fraction=0.2 --out "$d/split" --log-level off >/dev/null
run linear-regression -i table="$d/split/train.json" -c target=progression --out "$d/model" | sed -n '/tracked:/,$p'
run linear-runner --model "$d/model/model.bin" -i features="$d/split/test.json" --out "$d/pred" >/dev/null
run evaluator -i truth="$d/split/test.json" -i predictions="$d/pred/predictions.json" -c target=progression | sed -n '/tracked:/,$p'

step "iris: read, standardize, stratified split, fit multinomial logistic regression, predict, evaluate"
i=$out/iris
run csv-reader --grant-dir examples/data:ro -c path=examples/data/iris.csv --out "$i/read" --log-level off >/dev/null
run standardize -i table="$i/read/table.json" --out "$i/std" >/dev/null
run train-test-split -i table="$i/std/table.json" -c seed=7 -c stratify=species --out "$i/split" --log-level off >/dev/null
run logistic-regression -i table="$i/split/train.json" -c target=species --out "$i/model" | sed -n '/tracked:/,$p'
run linear-runner --model "$i/model/model.bin" -i features="$i/split/test.json" --out "$i/pred" | head -8
run evaluator -i truth="$i/split/test.json" -i predictions="$i/pred/predictions.json" -c target=species | sed -n '/tracked:/,$p'

step "the sandbox: a plugin reaching outside its grant is refused"
run csv-reader -c path=/etc/passwd 2>&1 | tail -1 || true

step "done: every value is in $out/, one JSON document per output"
