"""The same MLflow Python client for every server: logs N metric points to one run in
batches of 1,000 with `MlflowClient.log_batch`, and prints one JSON line:
points/s (wall clock) and the client's own CPU seconds, which show when the client itself
is the ceiling.

Usage: python bench/ingest_client.py URL POINTS
"""

import json
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

BATCH = 1000


def main() -> None:
    url, points = sys.argv[1], int(sys.argv[2])
    client = MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"ingest-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    # Warm up the connection and the server's first write.
    client.log_batch(run, metrics=[Metric("warmup", 0.0, 0, 0)])
    now_ms = int(time.time() * 1000)
    wall, cpu = time.perf_counter(), time.process_time()
    for first in range(0, points, BATCH):
        metrics = [
            Metric("loss", 1.0 / (s + 1), now_ms + s, s)
            for s in range(first, min(first + BATCH, points))
        ]
        client.log_batch(run, metrics=metrics)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    got = len(client.get_metric_history(run, "loss"))
    assert got == points, f"the server kept {got} of {points} points"
    print(json.dumps({"points": points, "seconds": wall, "points_per_s": points / wall,
                      "client_cpu_s": cpu}))


if __name__ == "__main__":
    main()
