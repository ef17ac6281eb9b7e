"""Makes the ONNX models the Rust tests and the benchmark use, with onnxruntime's reference
outputs for them. Deterministic: fixed seeds, single-threaded onnxruntime.

Usage: python tests/onnx/make_models.py OUT_DIR     (scripts/onnx-models.sh runs it)

Writes in OUT_DIR:
  iris-pipeline.onnx         StandardScaler + LogisticRegression on examples/data/iris.csv,
                             by skl2onnx (Scaler, LinearClassifier of ai.onnx.ml), zipmap off:
                             input `features` float32 [N,4]; outputs `label` int64 [N]
                             (class index: setosa 0, versicolor 1, virginica 2),
                             `probabilities` float32 [N,3]
  iris-zipmap.onnx           the same pipeline with skl2onnx's default ZipMap: its
                             `output_probability` is a sequence of maps (negative fixture)
  digits-cnn.onnx            a small CNN on scikit-learn's bundled 8x8 digits, by onnx.helper:
                             input `image` float32 [N,1,8,8] (pixels / 16), output
                             `probabilities` float32 [N,10]; fixed random convolutions, a
                             Gemm readout trained by LogisticRegression on their features
  dense.onnx                 one float32 layer by onnx.helper, y = relu(x . W + b): input `x`
                             float32 [N,256], output `y` float32 [N,256], W and b seeded. Pure
                             matrix-product work, for the benchmark (no cases: tests don't use it)
  broken.onnx                bytes that are no ONNX protobuf (negative fixture)
  NAME.cases.json            for iris-pipeline and digits-cnn: batches of 1, 7 and 64 rows,
                             each {"batch", "inputs": {name: Kiln value document},
                             "outputs": {name: {"dtype", "shape", "values"}}} with the
                             outputs onnxruntime's InferenceSession.run returns
  digits-cnn.accuracy.txt    the CNN's accuracy on its held-out quarter of the digits
  iris.features.json         the iris feature column names, in order
"""

import csv
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

REPO = Path(__file__).resolve().parents[2]
IRIS_CSV = REPO / "examples" / "data" / "iris.csv"
SEED = 20240611
BATCHES = (1, 7, 64)
OPSET = 17
ML_OPSET = 3
# IR version 8 goes with opset 17: the oldest that carries it, so older runtimes load it too.
IR_VERSION = 8


def session(model: onnx.ModelProto | bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(path), full_check=True)


def model_of(graph: onnx.GraphProto) -> onnx.ModelProto:
    """A model of the default opset OPSET and IR_VERSION around `graph`."""
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="kiln tests/onnx/make_models.py",
        ir_version=IR_VERSION,
    )


def dedupe_opsets(model: onnx.ModelProto) -> None:
    """skl2onnx with zipmap off lists the default domain's opset twice; keep one entry per
    domain, as the ONNX IR spec asks."""
    seen = {}
    for o in model.opset_import:
        if seen.setdefault(o.domain, o.version) != o.version:
            raise SystemExit(f"opset imports disagree for domain {o.domain!r}")
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in seen.items())


def dtype_name(a: np.ndarray) -> str:
    if a.dtype == np.float32:
        return "float32"
    if a.dtype == np.int64:
        return "int64"
    if a.dtype.kind in "OUS":
        return "string"
    raise TypeError(f"no case dtype for {a.dtype}")


def flat_values(a: np.ndarray) -> list:
    kind = dtype_name(a)
    flat = np.ascontiguousarray(a).reshape(-1)
    if kind == "float32":
        return [float(x) for x in flat]  # exact: every float32 is a float64
    if kind == "int64":
        return [int(x) for x in flat]
    return [str(x) for x in flat]


def tensor_doc(a: np.ndarray) -> dict:
    """A Kiln value document (`value/1`) holding the tensor `a`."""
    assert a.dtype == np.float32
    return {
        "$kiln": "value/1",
        "kind": "tensor",
        "dtype": "float32",
        "shape": list(a.shape),
        "values": flat_values(a),
    }


def cases(sess: ort.InferenceSession, input_name: str, data: np.ndarray, seed: int) -> list:
    """Batches of BATCHES rows drawn from `data` (repeating rows when it has too few), with
    what onnxruntime returns for them."""
    rng = np.random.default_rng(seed)
    names = [o.name for o in sess.get_outputs()]
    out = []
    for n in BATCHES:
        order = rng.permutation(len(data))
        rows = np.resize(order, n)  # repeats the permutation when n > len(data)
        batch = np.ascontiguousarray(data[rows], dtype=np.float32)
        results = sess.run(None, {input_name: batch})
        outputs = {}
        for name, r in zip(names, results):
            r = np.asarray(r)
            outputs[name] = {"dtype": dtype_name(r), "shape": list(r.shape), "values": flat_values(r)}
        out.append({"batch": n, "inputs": {input_name: tensor_doc(batch)}, "outputs": outputs})
    return out


def write_json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc) + "\n")


# --- iris: a scikit-learn pipeline through skl2onnx ---

def iris(out: Path) -> None:
    with IRIS_CSV.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if r]
    features, target = header[:-1], header[-1]
    assert len(features) == 4 and target == "species", header
    x = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float32)
    # Classes as their index among the sorted names (setosa 0, versicolor 1, virginica 2):
    # tract 0.23 cannot type a LinearClassifier with string labels.
    classes = sorted({r[-1] for r in rows})
    y = np.array([classes.index(r[-1]) for r in rows], dtype=np.int64)

    pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(x, y)
    initial_types = [("features", FloatTensorType([None, 4]))]
    target_opset = {"": OPSET, "ai.onnx.ml": ML_OPSET}

    model = convert_sklearn(
        pipe,
        name="iris-pipeline",
        initial_types=initial_types,
        options={LogisticRegression: {"zipmap": False}},
        target_opset=target_opset,
    )
    dedupe_opsets(model)
    save(model, out / "iris-pipeline.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"Scaler", "LinearClassifier"} <= ops, ops

    sess = session(model)
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
    label, proba = sess.run(None, {"features": x})
    # The converted model must agree with scikit-learn.
    assert (label == pipe.predict(x)).all()
    assert np.allclose(proba, pipe.predict_proba(x), atol=1e-4)
    write_json(out / "iris-pipeline.cases.json", cases(sess, "features", x, SEED + 1))
    write_json(out / "iris.features.json", features)

    zipmap = convert_sklearn(
        pipe, name="iris-zipmap", initial_types=initial_types, target_opset=target_opset
    )
    save(zipmap, out / "iris-zipmap.onnx")
    assert "ZipMap" in {n.op_type for n in zipmap.graph.node}
    assert any(
        o.type.HasField("sequence_type") for o in zipmap.graph.output
    ), "the zipmap model should output a sequence of maps"


# --- digits: a small CNN built with onnx.helper ---

CONV1, CONV2 = 16, 32


def cnn_graph(weights: dict, readout: tuple | None) -> onnx.ModelProto:
    """The convolutional trunk; with `readout` (coef [10, F], intercept [10]) also the Gemm and
    Softmax that make it a classifier, without it the trunk's flattened features."""
    N = "N"
    nodes = [
        helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["features"], axis=1),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    n_features = CONV2 * 2 * 2
    if readout is None:
        output = helper.make_tensor_value_info("features", TensorProto.FLOAT, [N, n_features])
        name = "digits-cnn-trunk"
    else:
        coef, intercept = readout
        inits += [
            numpy_helper.from_array(coef.astype(np.float32), "fc.w"),
            numpy_helper.from_array(intercept.astype(np.float32), "fc.b"),
        ]
        nodes += [
            helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ]
        output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [N, 10])
        name = "digits-cnn"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [N, 1, 8, 8])],
        [output],
        initializer=inits,
    )
    model = model_of(graph)
    model.doc_string = "Digits 8x8 (scikit-learn), pixels / 16; fixed random convolutions, trained readout."
    return model


def digits(out: Path) -> float:
    d = load_digits()
    images = (d.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels
    )

    rng = np.random.default_rng(SEED)

    def he(shape):  # He-scaled normal for a conv weight [out, in, kh, kw]
        fan_in = shape[1] * shape[2] * shape[3]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    weights = {
        "conv1.w": he((CONV1, 1, 3, 3)),
        "conv1.b": (rng.standard_normal(CONV1) * 0.05).astype(np.float32),
        "conv2.w": he((CONV2, CONV1, 3, 3)),
        "conv2.b": (rng.standard_normal(CONV2) * 0.05).astype(np.float32),
    }

    trunk = cnn_graph(weights, None)
    onnx.checker.check_model(trunk, full_check=True)
    trunk_sess = session(trunk)
    f_train = trunk_sess.run(None, {"image": x_train})[0]

    # Standardized features make the fit converge in a few dozen steps; the scaling is then
    # folded into the Gemm: coef @ ((f - mean) / scale) + b = (coef / scale) @ f + b'.
    scaler = StandardScaler().fit(f_train)
    clf = LogisticRegression(max_iter=1000)
    clf.fit(scaler.transform(f_train), y_train)
    assert list(clf.classes_) == list(range(10))
    coef = clf.coef_ / scaler.scale_
    intercept = clf.intercept_ - coef @ scaler.mean_

    model = cnn_graph(weights, (coef, intercept))
    save(model, out / "digits-cnn.onnx")
    sess = session(model)
    proba = sess.run(None, {"image": x_test})[0]
    accuracy = float((proba.argmax(axis=1) == y_test).mean())
    # The ONNX readout must be the fitted classifier.
    f_test = trunk_sess.run(None, {"image": x_test})[0]
    assert np.allclose(proba, clf.predict_proba(scaler.transform(f_test)), atol=1e-4)
    if accuracy < 0.9:
        raise SystemExit(f"digits-cnn held-out accuracy {accuracy:.4f} is below 0.9")

    (out / "digits-cnn.accuracy.txt").write_text(f"{accuracy:.4f}\n")
    write_json(out / "digits-cnn.cases.json", cases(sess, "image", x_test, SEED + 2))
    return accuracy


# --- dense: one layer of matrix-product work ---

DENSE = 256


def dense(out: Path) -> None:
    rng = np.random.default_rng(SEED + 4)
    w = (rng.standard_normal((DENSE, DENSE)) / np.sqrt(DENSE)).astype(np.float32)
    b = (rng.standard_normal(DENSE) * 0.05).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", DENSE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", DENSE])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = model_of(graph)
    x = rng.uniform(0.0, 1.0, (8, DENSE)).astype(np.float32)
    expected = np.maximum(x @ w + b, 0.0)
    got = session(model).run(None, {"x": x})[0]
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-5), "onnxruntime disagrees with numpy"
    save(model, out / "dense.onnx")


# --- broken: no protobuf at all ---

def broken(out: Path) -> None:
    rng = np.random.default_rng(SEED + 3)
    data = b"this is not an ONNX model\n" + rng.integers(0, 256, 320, dtype=np.uint8).tobytes()
    path = out / "broken.onnx"
    path.write_bytes(data)
    ort.set_default_logger_severity(4)  # the failed load below would log an error
    for load in (lambda: onnx.load(str(path)), lambda: session(data)):
        try:
            load()
        except Exception:
            continue
        raise SystemExit("broken.onnx loaded: pick other bytes")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # skl2onnx and scikit-learn warn about each other's versions; the asserts above check
        # that the converted models agree with scikit-learn instead.
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        iris(out)
        accuracy = digits(out)
        dense(out)
        broken(out)
    print(f"make_models: wrote {out}; digits-cnn held-out accuracy {accuracy:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
