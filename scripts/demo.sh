#!/usr/bin/env bash
# Kiln's end-to-end demo, from a fresh clone: builds the `kiln` binary and the standard
# plugins, then trains and evaluates two models on the shipped datasets, one sandboxed
# plugin at a time. Every intermediate value is left in target/demo/ to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "setting up (toolchain target, kiln binary, standard plugins)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-wasip2
cargo build --release --locked -p kiln
plugins=()
for dir in plugins/*/; do
  grep -q cdylib "$dir/Cargo.toml" && plugins+=(-p "$(basename "$dir")")
done
cargo build --locked --target wasm32-wasip2 --profile guest --target-dir target/guests "${plugins[@]}"

export KILN_HOME="$PWD/target/demo/home"
kiln=target/release/kiln
wasm=target/guests/wasm32-wasip2/guest
out=target/demo
rm -rf "$out/diabetes" "$out/iris"
run() { "$kiln" plugin run "$@"; }

step "what a plugin looks like"
"$kiln" plugin inspect "$wasm/linear_regression.wasm"

step "diabetes: read, validate, split, fit least squares, predict, evaluate"
d=$out/diabetes
run "$wasm/csv_reader.wasm" --grant-dir examples/data:ro -c path=examples/data/diabetes.csv --out "$d/read" --log-level warn | head -8
run "$wasm/schema_validator.wasm" -i table="$d/read/table.json" \
  -c columns=age,bmi,bp,progression -c ranges=age:0..120,bmi:10..60 -c min_rows=100 | grep -E "FAIL|finished" || true
run "$wasm/train_test_split.wasm" -i table="$d/read/table.json" -c seed=42 -c test_fraction=0.2 --out "$d/split" --log-level off >/dev/null
run "$wasm/linear_regression.wasm" -i table="$d/split/train.json" -c target=progression --out "$d/model" | sed -n '/tracked:/,$p'
run "$wasm/linear_runner.wasm" --model "$d/model/model.bin" -i features="$d/split/test.json" --out "$d/pred" >/dev/null
run "$wasm/evaluator.wasm" -i truth="$d/split/test.json" -i predictions="$d/pred/predictions.json" -c target=progression | sed -n '/tracked:/,$p'

step "iris: read, standardize, stratified split, fit multinomial logistic regression, predict, evaluate"
i=$out/iris
run "$wasm/csv_reader.wasm" --grant-dir examples/data:ro -c path=examples/data/iris.csv --out "$i/read" --log-level off >/dev/null
run "$wasm/standardize.wasm" -i table="$i/read/table.json" --out "$i/std" >/dev/null
run "$wasm/train_test_split.wasm" -i table="$i/std/table.json" -c seed=7 -c stratify=species --out "$i/split" --log-level off >/dev/null
run "$wasm/logistic_regression.wasm" -i table="$i/split/train.json" -c target=species --out "$i/model" | sed -n '/tracked:/,$p'
run "$wasm/linear_runner.wasm" --model "$i/model/model.bin" -i features="$i/split/test.json" --out "$i/pred" | head -8
run "$wasm/evaluator.wasm" -i truth="$i/split/test.json" -i predictions="$i/pred/predictions.json" -c target=species | sed -n '/tracked:/,$p'

step "the sandbox: a plugin reaching outside its grant is refused"
run "$wasm/csv_reader.wasm" -c path=/etc/passwd 2>&1 | tail -1 || true

step "done: every value is in $out/, one JSON document per output"
