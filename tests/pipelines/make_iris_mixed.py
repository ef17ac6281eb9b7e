"""Writes iris-mixed.csv: a copy of examples/data/iris.csv made messier for pipeline tests.

Usage: python3 tests/pipelines/make_iris_mixed.py > tests/pipelines/iris-mixed.csv

The rows and values are Fisher's iris data (see examples/data/README.md), with two changes,
both drawn from a seeded random source so the file is the same on every run:
- a categorical column `site` (north, south, east or west) is added after the features:
  synthetic, drawn with odds that depend on the species, so it carries a little signal;
- one numeric cell in twelve is left empty (a missing measurement), never the label.
"""

import csv
import random
import sys

rng = random.Random(26)
ODDS = {
    "setosa": [5, 2, 2, 1],
    "versicolor": [2, 4, 2, 2],
    "virginica": [1, 2, 3, 4],
}
SITES = ["north", "south", "east", "west"]

with open("examples/data/iris.csv", newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(header[:4] + ["site", header[4]])
for row in rows:
    features = [v if rng.random() >= 1 / 12 else "" for v in row[:4]]
    site = rng.choices(SITES, weights=ODDS[row[4]])[0]
    out.writerow(features + [site, row[4]])
