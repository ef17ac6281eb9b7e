"""scikit-learn's answer for a Kiln inference pipeline, for tests/all/pipelines.rs.

Usage: python sklearn_reference.py regression TRAIN.csv ROWS.csv TARGET

Fits make_pipeline(StandardScaler(), LinearRegression()) on TRAIN.csv (the training rows
Kiln's split made, every column but TARGET a feature) and prints, as a JSON list, its
prediction for every row of ROWS.csv (the same feature columns; TARGET, if there, is
ignored). Runs in the venv scripts/onnx-models.sh makes (scikit-learn at its pinned version).
"""

import csv
import json
import sys

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def read(path, target):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c != target]
    x = np.array([[float(r[c]) for c in features] for r in rows])
    y = np.array([float(r[target]) for r in rows]) if target in rows[0] else None
    return features, x, y


def main():
    kind, train_path, rows_path, target = sys.argv[1:5]
    if kind != "regression":
        raise SystemExit(f"unknown kind {kind}")
    features, x, y = read(train_path, target)
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(x, y)
    names, rows, _ = read(rows_path, target)
    if names != features:
        raise SystemExit(f"{rows_path} has columns {names}, the training rows {features}")
    json.dump([float(p) for p in model.predict(rows)], sys.stdout)


if __name__ == "__main__":
    main()
