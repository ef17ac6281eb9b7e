"""scikit-learn's answer for a Kiln inference pipeline, for tests/all/pipelines.rs.

Usage: python sklearn_reference.py regression|classification TRAIN.csv ROWS.csv TARGET

Fits a pipeline on TRAIN.csv (the training rows Kiln's split made, every column but TARGET
a feature) and prints its answer for every row of ROWS.csv (the same feature columns;
TARGET, if there, is ignored) as JSON:
- regression: make_pipeline(StandardScaler(), LinearRegression()); a list of predictions.
- classification: numeric columns through SimpleImputer(mean) then StandardScaler, text
  columns through OneHotEncoder, then LogisticRegression(C=1) solved to a tight tolerance;
  {"classes": [...], "labels": [one per row], "proba": [[one per class] per row]}.
An empty cell is a missing value. Runs in the venv scripts/onnx-models.sh makes
(scikit-learn at its pinned version).
"""

import csv
import json
import sys

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def read(path, target):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c != target]
    x = np.array([[float(r[c]) for c in features] for r in rows])
    y = np.array([float(r[target]) for r in rows]) if target in rows[0] else None
    return features, x, y


def number(cell):
    return float(cell) if cell != "" else np.nan


def read_mixed(path, target):
    """Features as an object array (numbers, NaN for an empty cell, or text) and labels."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c != target]

    def numeric(c):
        try:
            [number(r[c]) for r in rows]
            return True
        except ValueError:
            return False

    kinds = {c: numeric(c) for c in features}
    x = np.array(
        [[number(r[c]) if kinds[c] else r[c] for c in features] for r in rows], dtype=object
    )
    y = [r[target] for r in rows] if target in rows[0] else None
    return features, kinds, x, y


def classification(train_path, rows_path, target):
    features, kinds, x, y = read_mixed(train_path, target)
    numeric = [j for j, c in enumerate(features) if kinds[c]]
    text = [j for j, c in enumerate(features) if not kinds[c]]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
                ("text", OneHotEncoder(handle_unknown="ignore"), text),
            ]
        ),
        LogisticRegression(C=1.0, tol=1e-12, max_iter=10000),
    ).fit(x, y)
    names, _, rows, _ = read_mixed(rows_path, target)
    if names != features:
        raise SystemExit(f"{rows_path} has columns {names}, the training rows {features}")
    proba = model.predict_proba(rows)
    json.dump(
        {
            "classes": [str(c) for c in model.classes_],
            "labels": [str(c) for c in model.predict(rows)],
            "proba": proba.tolist(),
        },
        sys.stdout,
    )


def main():
    kind, train_path, rows_path, target = sys.argv[1:5]
    if kind == "classification":
        return classification(train_path, rows_path, target)
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
