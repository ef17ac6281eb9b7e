"""MLflow's own scoring client against `mlflow models serve` and `kiln model serve` serving
the same pipeline, for tests/all/pipelines.rs.

Usage: python mlflow_scoring.py TRAIN.csv ROWS.csv TARGET KILN_URL WORKDIR

Fits make_pipeline(StandardScaler(), LinearRegression()) on TRAIN.csv (the training rows
Kiln's split made), saves it with mlflow.sklearn in WORKDIR and serves it with
`mlflow models serve --env-manager local`. Then asks both servers about every row of
ROWS.csv (TARGET dropped): with mlflow's ScoringServerClient (a pandas DataFrame sent as
dataframe_split), and as CSV through requests, as MLflow's documentation shows. Prints
{"mlflow": [...], "kiln": [...], "mlflow_csv": [...], "kiln_csv": [...]}. Runs in the venv
scripts/python-env.sh makes (mlflow-skinny, scikit-learn, pandas and skops at their pins).
"""

import json
import os
import socket
import subprocess
import sys
from urllib.parse import urlparse

import mlflow.sklearn
import pandas as pd
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def predictions(client, rows):
    return [float(p) for p in client.invoke(rows)["predictions"]]


def csv_predictions(client, rows):
    response = requests.post(
        client.url_prefix + "/invocations",
        data=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    response.raise_for_status()
    return [float(p) for p in response.json()["predictions"]]


def main():
    train_path, rows_path, target, kiln_url, workdir = sys.argv[1:6]
    train = pd.read_csv(train_path)
    x, y = train.drop(columns=[target]), train[target]
    model_dir = os.path.join(workdir, "mlflow-model")
    mlflow.sklearn.save_model(
        make_pipeline(StandardScaler(), LinearRegression()).fit(x, y),
        model_dir,
        input_example=x.head(2),
    )
    rows = pd.read_csv(rows_path).drop(columns=[target])

    port = free_port()
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    log = open(os.path.join(workdir, "mlflow-serve.log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_dir,
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        mlflow_client = ScoringServerClient("127.0.0.1", port)
        mlflow_client.wait_server_ready(timeout=120, scoring_server_proc=server)
        kiln = urlparse(kiln_url)
        kiln_client = ScoringServerClient(kiln.hostname, kiln.port)
        kiln_client.ping()
        out = {
            "mlflow": predictions(mlflow_client, rows),
            "kiln": predictions(kiln_client, rows),
            "mlflow_csv": csv_predictions(mlflow_client, rows),
            "kiln_csv": csv_predictions(kiln_client, rows),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
