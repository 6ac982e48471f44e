"""A deploy folder runs no code either: its JSON has a fixed schema, its files their sha256."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import skft
from skft import Compressed, FineTunedClassifier
from skft.io.trust import ModelFileError


@pytest.fixture(scope="module")
def folder(digits, fast_settings, tmp_path_factory):
    """An int8 smallcnn's deploy folder, loaded once (every module loading needs is imported)."""
    comp = Compressed(FineTunedClassifier(**fast_settings), quantize="int8", random_state=0)
    path = comp.fit(*digits).save(tmp_path_factory.mktemp("d") / "d.skft", deploy=True)
    skft.load(path).predict(digits[0][:2])
    return path


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy.skft"))


def _edit(path: Path, edit) -> None:
    config = json.loads((path / "deploy.json").read_text())
    edit(config)
    (path / "deploy.json").write_text(json.dumps(config))


def _refused(path: Path, match: str) -> str:
    """Load ``path``: a ModelFileError matching ``match``, and no module imported."""
    before = set(sys.modules)
    with pytest.raises(ModelFileError, match=match) as info:
        skft.load(path)
    assert set(sys.modules) - before == set()
    return str(info.value)


def _replace_onnx(path: Path, model: bytes) -> None:
    (path / "model.onnx").write_bytes(model)
    _edit(path, lambda c: c.update(onnx_sha256=hashlib.sha256(model).hexdigest()))


def test_a_changed_onnx_file_is_refused_naming_it(folder, tmp_path):
    path = _copy(folder, tmp_path)
    data = bytearray((path / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "model.onnx").write_bytes(bytes(data))
    _refused(path, r"model\.onnx does not match the sha256 recorded in deploy\.json")
    (path / "model.onnx").unlink()
    _refused(path, r"cannot read model\.onnx")


EDITS = {
    "a type to import": (lambda c: c.update(__import__="os.system"), "unknown '__import__'"),
    "an estimator class": (lambda c: c.update({"class": "FineTunedClassifier"}), "unknown 'class'"),
    "an adapter": (
        lambda c: c["input"].update(adapter={"__import__": "os.system"}),
        "input: unknown 'adapter'",
    ),
    "an unknown input kind": (lambda c: c["input"].update(kind="pickle"), "input kind 'pickle'"),
    "an unknown output": (lambda c: c.update(output="eval"), "output must be one of"),
    "a reference in the report": (
        lambda c: c["compression"].update(x={"__import__": "os.system"}),
        "compression must be a JSON object of plain values",
    ),
    "a huge image": (lambda c: c["input"].update(shape=[1, 16, 10**9]), "input.shape must be"),
    "a missing key": (lambda c: c.pop("classes"), "missing classes"),
    "an unknown task": (lambda c: c.update(task="fit"), "task 'fit'"),
    "a void dtype": (lambda c: c["classes"].update(dtype="|V8"), "not a label dtype"),
    "a newer format": (lambda c: c.update(format_version=2), "upgrade skft"),
    "another format": (lambda c: c.update(format="skft-model"), "not a deploy folder"),
    "a bad digest": (lambda c: c.update(onnx_sha256="abc"), "not a sha256 digest"),
    "mean per channel": (lambda c: c["input"].update(mean=[0.5, 0.5]), "one value per channel"),
}


@pytest.mark.parametrize(("edit", "match"), EDITS.values(), ids=EDITS.keys())
def test_anything_outside_the_schema_is_refused(folder, tmp_path, edit, match):
    path = _copy(folder, tmp_path)
    _edit(path, edit)
    _refused(path, match)


def test_non_json_constants_are_refused(folder, tmp_path):
    path = _copy(folder, tmp_path)
    text = (path / "deploy.json").read_text().replace('"prune": 0.0', '"prune": NaN')
    (path / "deploy.json").write_text(text)
    _refused(path, "not valid JSON")


def test_a_deploy_folder_beside_a_full_model_is_refused(folder, tmp_path):
    path = _copy(folder, tmp_path)
    (path / "config.json").write_text("{}")
    _refused(path, "holds both deploy.json and config.json")


def _onnx_model(shape: list[int], external: str | None = None) -> bytes:
    """A one-node ONNX model ``y = x @ w`` (``w`` external data at ``external``)."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((shape[-1], 3), np.float32), "w")
    if external is not None:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        entry = w.external_data.add()
        entry.key, entry.value = "location", external
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


@pytest.mark.parametrize("location", ["secret.bin", "../secret.bin", "/etc/hostname"])
def test_onnx_external_data_is_never_read(folder, tmp_path, location):
    """ONNX Runtime reads the model from its bytes: no file next to it or elsewhere is read."""
    path = _copy(folder, tmp_path)
    (path / "secret.bin").write_bytes(b"\x01" * 1024)
    (tmp_path / "secret.bin").write_bytes(b"\x01" * 1024)
    _replace_onnx(path, _onnx_model([1, 16, 16], external=location))
    _refused(path, "not a model ONNX Runtime can run")


def test_an_onnx_model_of_another_input_is_refused(folder, tmp_path):
    path = _copy(folder, tmp_path)
    _replace_onnx(path, _onnx_model([5]))
    _refused(path, r"does not fit deploy\.json.*want x \(N, 1, 16, 16\)")


# --------------------------------------------------------------------------
# any mutation: it loads, or ModelFileError; nothing is written
# --------------------------------------------------------------------------

_LEAVES = (
    st.none()
    | st.booleans()
    | st.sampled_from(["", "image", "text", "tabular", "softmax", "../../etc/passwd", "<U4"])
    | st.floats(allow_nan=False)
    | st.integers(-(10**12), 10**12)
    | st.builds(lambda n: {"__import__": n}, st.sampled_from(["os.system", "builtins.eval"]))
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
_TOP = st.sampled_from(["format", "format_version", "task", "backbone", "input", "output",
                        "classes", "onnx_sha256", "compression", "target"])  # fmt: skip
_INPUT = st.sampled_from(["kind", "shape", "mean", "std", "n_features", "channels"])
_MUTATIONS = st.one_of(
    st.tuples(st.just("top"), _TOP, _VALUES),
    st.tuples(st.just("input"), _INPUT, _VALUES),
    st.tuples(st.just("classes"), st.sampled_from(["dtype", "values"]), _VALUES),
    st.tuples(st.just("drop"), _TOP, st.none()),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.booleans()),
)


def _mutate(path: Path, mutation) -> None:
    kind, key, value = mutation
    config = json.loads((path / "deploy.json").read_text())
    section = config.get(kind) if kind in ("input", "classes") else config
    if kind == "drop":
        config.pop(key, None)
    elif kind == "flip":
        data = bytearray((path / "model.onnx").read_bytes())
        data[key % len(data)] ^= 0xA5
        (path / "model.onnx").write_bytes(bytes(data))
        if value:  # the digest updated too: ONNX Runtime and the shape checks must catch it
            config["onnx_sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    elif isinstance(section, dict):
        section[key] = value
    (path / "deploy.json").write_text(json.dumps(config))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(_MUTATIONS, min_size=1, max_size=3))
def test_any_mutation_loads_or_raises_model_file_error(folder, mutations):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(shutil.copytree(folder, Path(tmp) / "d.skft"))
        for mutation in mutations:
            _mutate(path, mutation)
        before = {str(p) for p in Path(tmp).rglob("*")}
        try:
            skft.load(path)
            event("loaded")
        except ModelFileError as exc:
            event(f"refused: {str(exc).split(':')[-1][:40]}")
        assert {str(p) for p in Path(tmp).rglob("*")} == before
