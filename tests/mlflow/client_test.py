"""The official MLflow client against `kiln serve`, unchanged: MLFLOW_TRACKING_URI points at
the server. Run by tests/all/mlflow.rs; exits non-zero on the first failed check."""

import math
import os
import sys
import time

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

assert os.environ["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
client = MlflowClient()


def expect_error(code, f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except MlflowException as e:
        assert e.error_code == code, f"expected {code}, got {e.error_code}: {e}"
        return e
    raise AssertionError(f"expected {code} from {f.__name__}")


# Experiments: create, get, get by name, search, set (fluent), tags, duplicates.
exp_id = client.create_experiment("kiln-client-test", tags={"team": "ml"})
exp = client.get_experiment(exp_id)
assert exp.name == "kiln-client-test" and exp.tags["team"] == "ml", exp
assert client.get_experiment_by_name("kiln-client-test").experiment_id == exp_id
assert client.get_experiment_by_name("no-such-experiment") is None
expect_error("RESOURCE_ALREADY_EXISTS", client.create_experiment, "kiln-client-test")
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_experiment, "987654")
client.set_experiment_tag(exp_id, "stage", "dev")
assert client.get_experiment(exp_id).tags["stage"] == "dev"
names = [e.name for e in client.search_experiments()]
assert "kiln-client-test" in names and "Default" in names, names
found = client.search_experiments(filter_string="name = 'kiln-client-test'")
assert [e.experiment_id for e in found] == [exp_id], found
fluent = mlflow.set_experiment("kiln-fluent")
assert mlflow.get_experiment_by_name("kiln-fluent").experiment_id == fluent.experiment_id

# Runs through the fluent API: params, metrics with steps, tags, batches, end.
with mlflow.start_run(run_name="fluent-run") as run:
    run_id = run.info.run_id
    mlflow.log_param("lr", 0.1)
    mlflow.log_params({"epochs": 3, "model": "ols"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"r2": 0.55, "rmse": 54.6})
    mlflow.set_tag("purpose", "test")
    mlflow.set_tags({"a": "1", "b": "2"})
    # A dataset input, with its digest; logging it twice keeps one.
    dataset = DatasetInput(
        Dataset(
            name="diabetes",
            digest="5e1f0c2a",
            source_type="http",
            source='{"url": "https://example.org/diabetes.csv"}',
        ),
        tags=[InputTag("mlflow.data.context", "training")],
    )
    client.log_inputs(run_id, datasets=[dataset])
    client.log_inputs(run_id, datasets=[dataset])
got = client.get_run(run_id)
inputs = got.inputs.dataset_inputs
assert len(inputs) == 1, inputs
assert (inputs[0].dataset.name, inputs[0].dataset.digest) == ("diabetes", "5e1f0c2a"), inputs
assert inputs[0].dataset.source_type == "http", inputs[0].dataset
assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
assert got.info.status == "FINISHED" and got.info.end_time is not None, got.info
assert got.info.run_name == "fluent-run"
assert got.data.params == {"lr": "0.1", "epochs": "3", "model": "ols"}, got.data.params
assert got.data.metrics["loss"] == 0.2 and got.data.metrics["r2"] == 0.55, got.data.metrics
assert got.data.tags["purpose"] == "test" and got.data.tags["b"] == "2"
history = client.get_metric_history(run_id, "loss")
assert [m.step for m in history] == [0, 1, 2, 3, 4], history
assert [round(m.value, 6) for m in history] == [1.0, 0.5, 0.333333, 0.25, 0.2]

# The client API: create, log a batch, update, a param cannot change, NaN survives.
run2 = client.create_run(fluent.experiment_id, run_name="batch-run", tags={"kind": "batch"})
rid = run2.info.run_id
now = int(time.time() * 1000)
client.log_batch(
    rid,
    metrics=[Metric("acc", 0.5 + i / 100, now + i, i) for i in range(1000)],
    params=[Param("lr", "0.01")],
    tags=[RunTag("kind", "batch")],
)
client.log_metric(rid, "odd", float("nan"))
assert len(client.get_metric_history(rid, "acc")) == 1000
assert math.isnan(client.get_run(rid).data.metrics["odd"])
expect_error("INVALID_PARAMETER_VALUE", client.log_param, rid, "lr", "0.02")
# The client splits big batches itself; over HTTP, an oversized batch is refused.
uri = os.environ["MLFLOW_TRACKING_URI"]
# Raw requests carry the token the client uses, when the server wants one.
token = os.environ.get("MLFLOW_TRACKING_TOKEN")
auth = {"Authorization": f"Bearer {token}"} if token else {}
too_big = {"run_id": rid, "metrics": [{"key": "x", "value": 1.0, "timestamp": now, "step": i} for i in range(1001)]}
answer = requests.post(f"{uri}/api/2.0/mlflow/runs/log-batch", json=too_big, headers=auth, timeout=10)
assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE", answer.text
client.log_batch(rid, metrics=[Metric("split", 1.0, now, i) for i in range(2500)])
assert len(client.get_metric_history(rid, "split")) == 2500
# int64 fields as strings, as proto-JSON allows.
answer = requests.post(
    f"{uri}/api/2.0/mlflow/runs/log-metric",
    json={"run_id": rid, "key": "s", "value": "1.5", "timestamp": str(now), "step": "7"},
    headers=auth,
    timeout=10,
)
assert answer.status_code == 200, answer.text
assert client.get_metric_history(rid, "s")[0].step == 7
client.set_terminated(rid, status="FAILED")
assert client.get_run(rid).info.status == "FAILED"
client.update_run(rid, name="renamed")
assert client.get_run(rid).info.run_name == "renamed"
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_run, "0" * 32)

# Search runs: filters and order_by, as the client writes them.
ids = [fluent.experiment_id]
runs = client.search_runs(ids, filter_string="metrics.r2 > 0.5")
assert [r.info.run_id for r in runs] == [run_id], runs
runs = client.search_runs(ids, filter_string="params.lr = '0.01' and attributes.status = 'FAILED'")
assert [r.info.run_id for r in runs] == [rid], runs
runs = client.search_runs(ids, order_by=["attributes.start_time ASC"])
assert [r.info.run_id for r in runs] == [run_id, rid], runs
runs = client.search_runs(ids, filter_string="tags.kind = 'batch'")
assert [r.info.run_id for r in runs] == [rid]
frame = mlflow.search_runs(experiment_ids=ids, output_format="list")
assert len(frame) == 2
page = client.search_runs(ids, max_results=1)
assert len(page) == 1 and page.token, page
rest = client.search_runs(ids, max_results=1, page_token=page.token)
assert len(rest) == 1 and rest[0].info.run_id != page[0].info.run_id
expect_error("INVALID_PARAMETER_VALUE", client.search_runs, ids, filter_string="metrics.r2 >")

# Delete and restore.
client.delete_run(rid)
assert [r.info.run_id for r in client.search_runs(ids)] == [run_id]
client.restore_run(rid)
assert len(client.search_runs(ids)) == 2

# Artifacts through the server's proxy: files and directories, listed and downloaded.
import tempfile

with tempfile.TemporaryDirectory() as tmp:
    os.makedirs(f"{tmp}/out/model")
    with open(f"{tmp}/out/model/weights.bin", "wb") as f:
        f.write(bytes(range(256)) * 4096)
    with open(f"{tmp}/out/notes.txt", "w") as f:
        f.write("hello from the client")
    with mlflow.start_run(experiment_id=exp_id) as art_run:
        mlflow.log_artifact(f"{tmp}/out/notes.txt")
        mlflow.log_artifacts(f"{tmp}/out/model", artifact_path="model")
        mlflow.log_text("inline text", "texts/a.txt")
    aid = art_run.info.run_id
    top = sorted((a.path, a.is_dir) for a in client.list_artifacts(aid))
    assert top == [("model", True), ("notes.txt", False), ("texts", True)], top
    inner = client.list_artifacts(aid, "model")
    assert [(a.path, a.file_size) for a in inner] == [("model/weights.bin", 256 * 4096)], inner
    got = mlflow.artifacts.download_artifacts(run_id=aid, artifact_path="model", dst_path=f"{tmp}/back")
    with open(os.path.join(got, "weights.bin"), "rb") as f:
        assert f.read() == bytes(range(256)) * 4096
    assert mlflow.artifacts.load_text(f"runs:/{aid}/texts/a.txt") == "inline text"
    answer = requests.put(f"{uri}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{aid}/artifacts/../../x", data=b"x", headers=auth, timeout=10)
    assert answer.status_code in (400, 404), answer.status_code
    # The experiment part of the path must be the run's own.
    answer = requests.put(f"{uri}/api/2.0/mlflow-artifacts/artifacts/999999/{aid}/artifacts/x", data=b"x", headers=auth, timeout=10)
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", answer.text
    # An artifact past the API's 64 MiB body limit: the client sends its Content-Length.
    import hashlib

    big = os.urandom(1 << 20) * 80
    with open(f"{tmp}/out/big.bin", "wb") as f:
        f.write(big)
    client.log_artifact(aid, f"{tmp}/out/big.bin", artifact_path="large")
    got = mlflow.artifacts.download_artifacts(run_id=aid, artifact_path="large/big.bin", dst_path=f"{tmp}/back")
    with open(got, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(big).digest()
    del big

# The model registry: register, versions, aliases, search.
# (MLflow 3 resolves `runs:/` URIs through logged models, which Kiln does not keep; the
# run's artifact URI registers the same files.)
registered = mlflow.register_model(f"{art_run.info.artifact_uri}/model", "kiln-test-model")
assert registered.version == "1" and registered.source.endswith("/artifacts/model"), registered
client.create_registered_model("kiln-other", tags={"owner": "ml"}, description="another")
expect_error("RESOURCE_ALREADY_EXISTS", client.create_registered_model, "kiln-other")
v2 = client.create_model_version("kiln-test-model", f"runs:/{run_id}/model", run_id=run_id)
assert v2.version == "2" and v2.status == "READY", v2
client.set_registered_model_alias("kiln-test-model", "champion", "1")
assert client.get_model_version_by_alias("kiln-test-model", "champion").version == "1"
client.set_registered_model_alias("kiln-test-model", "champion", 2)
assert client.get_model_version_by_alias("kiln-test-model", "champion").version == "2"
model = client.get_registered_model("kiln-test-model")
assert model.aliases == {"champion": "2"}, model.aliases
assert client.get_model_version("kiln-test-model", "2").aliases == ["champion"]
client.delete_registered_model_alias("kiln-test-model", "champion")
# Stages are a view of aliases: `production` and `staging`.
client.set_registered_model_alias("kiln-test-model", "production", "1")
assert client.get_model_version("kiln-test-model", "1").current_stage == "Production"
assert client.get_model_version("kiln-test-model", "2").current_stage == "None"
staged = client.get_latest_versions("kiln-test-model", stages=["Production"])
assert [v.version for v in staged] == ["1"], staged
assert sorted(v.version for v in client.get_latest_versions("kiln-test-model")) == ["1", "2"]
client.delete_registered_model_alias("kiln-test-model", "production")
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version_by_alias, "kiln-test-model", "champion")
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_model_version, "kiln-test-model", "9")
names = sorted(m.name for m in client.search_registered_models())
assert names == ["kiln-other", "kiln-test-model"], names
assert [m.name for m in client.search_registered_models(filter_string="name LIKE 'kiln-t%'")] == ["kiln-test-model"]
versions = client.search_model_versions("name = 'kiln-test-model'")
assert sorted(v.version for v in versions) == ["1", "2"], versions
assert [v.version for v in client.search_model_versions(f"run_id = '{run_id}'")] == ["2"]
assert client.get_model_version_download_uri("kiln-test-model", "2") == f"runs:/{run_id}/model"

print("mlflow", mlflow.__version__, "client checks passed")
