"""onnxruntime's own latency on the ONNX test models, the baseline for Kiln's ONNX runtime:
times `InferenceSession.run` (CPUExecutionProvider, one intra-op and one inter-op thread,
sequential execution) on seeded random inputs of each batch size, after a warm-up, for about
SECONDS per point, and prints one JSON object:

  {"onnxruntime": "1.x", "results": [{"model": "iris-pipeline", "batch": 1, "iters": N,
    "p50_us": ..., "mean_us": ..., "p99_us": ...}, ...]}

Usage: target/toolchains/onnx-venv/bin/python bench/onnx_ort.py MODEL_DIR
           [--batches 1,8,64] [--seconds 2]
MODEL_DIR is what scripts/onnx-models.sh makes (target/onnx-models); that script also makes
the venv.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

SEED = 7


def iris_input(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.standard_normal((batch, 4)).astype(np.float32)


def digits_input(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (batch, 1, 8, 8)).astype(np.float32)


def dense_input(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (batch, 256)).astype(np.float32)


MODELS = {"iris-pipeline": iris_input, "digits-cnn": digits_input, "dense": dense_input}


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def measure(sess: ort.InferenceSession, feed: dict, seconds: float) -> dict:
    run = sess.run
    # Warm-up: a tenth of the time, at least 20 runs.
    warm_end = time.perf_counter() + seconds / 10
    n = 0
    while n < 20 or time.perf_counter() < warm_end:
        run(None, feed)
        n += 1
    times = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        run(None, feed)
        t1 = clock()
        times.append(t1 - t0)
        if t1 >= end and len(times) >= 10:
            break
    us = np.array(times, dtype=np.float64) / 1e3
    return {
        "iters": len(times),
        "p50_us": round(float(np.percentile(us, 50)), 2),
        "mean_us": round(float(us.mean()), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--batches", default="1,8,64", help="comma-separated batch sizes")
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per point")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not batches or min(batches) < 1:
        ap.error("--batches needs positive integers")

    results = []
    for model, make_input in MODELS.items():
        path = args.model_dir / f"{model}.onnx"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run scripts/onnx-models.sh")
        sess = session(path)
        name = sess.get_inputs()[0].name
        for batch in batches:
            feed = {name: make_input(np.random.default_rng(SEED + batch), batch)}
            results.append({"model": model, "batch": batch, **measure(sess, feed, args.seconds)})
    print(json.dumps({"onnxruntime": ort.__version__, "results": results}))


if __name__ == "__main__":
    main()
