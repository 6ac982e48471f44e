"""Deploy folders (``Compressed.save(path, deploy=True)``): the ONNX model, its preprocessing
and labels, predict-only, the same predictions as the full folder, no torch to load."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import skft
from skft import Compressed, FineTunedClassifier, FineTunedRegressor
from skft.cli.main import main
from skft.data.adapters import adapt_images
from skft.deploy import DeployedClassifier, DeployedRegressor
from skft.plugins import pm

LABELS = np.array(["zero", "one", "two"])


@pytest.fixture(scope="module")
def compressed(digits, fast_settings):
    """A pruned int8 smallcnn with string labels: the Compressed, X and y."""
    X, y = digits
    y = LABELS[y]
    comp = Compressed(
        FineTunedClassifier(**fast_settings), prune=0.3, quantize="int8", recover_epochs=1
    )
    return comp.set_params(random_state=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def folders(compressed, tmp_path_factory):
    """The full folder and the deploy folder of :func:`compressed`."""
    comp = compressed[0]
    root = tmp_path_factory.mktemp("deploy")
    return comp.save(root / "full.skft"), comp.save(root / "deploy.skft", deploy=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_deploy_folder_holds_the_onnx_model_and_json_only(compressed, folders):
    full, deploy = folders
    assert {p.name for p in deploy.iterdir()} == {"deploy.json", "model.onnx"}
    assert (deploy / "model.onnx").read_bytes() == (full / "model.onnx").read_bytes()
    assert _size(deploy) < _size(full) - _size(full / "estimator") / 2
    config = json.loads((deploy / "deploy.json").read_text())
    spec = skft.get_backbone("smallcnn")  # grayscale: the channels' mean normalisation
    assert config["input"] == {
        "kind": "image",
        "shape": [1, 16, 16],
        "mean": pytest.approx([np.mean(spec.mean)]),
        "std": pytest.approx([np.mean(spec.std)]),
    }
    assert (config["task"], config["output"]) == ("classifier", "softmax")
    assert config["classes"]["values"] == sorted(LABELS)
    assert config["compression"] == compressed[0].compression_report_
    model = skft.load(deploy)
    assert isinstance(model, DeployedClassifier) and model.image_size == 16
    np.testing.assert_array_equal(model.classes_, compressed[0].classes_)
    assert model.classes_.dtype == compressed[0].classes_.dtype


def _as_files(X: np.ndarray, folder: Path) -> list[str]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, image in enumerate((X * 255).round().astype(np.uint8)):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


INPUTS = {
    "float 8 px (resized)": lambda X, tmp: X,
    "uint8 at the model's size": lambda X, tmp: adapt_images((X * 255).astype(np.uint8), 16),
    "float NHWC at the model's size": lambda X, tmp: adapt_images(X, 16).numpy()[:, 0, :, :, None],
    "PIL images": lambda X, tmp: [Image.open(p) for p in _as_files(X[:12], tmp / "png")],
    "file paths": lambda X, tmp: _as_files(X[:12], tmp / "png"),
}


@pytest.mark.parametrize("make", INPUTS.values(), ids=INPUTS.keys())
def test_predictions_are_the_full_models(compressed, folders, make, tmp_path):
    comp, X, y = compressed
    Xin = make(X, tmp_path)
    deployed, full = skft.load(folders[1]), skft.load(folders[0])
    proba = deployed.predict_proba(Xin)
    np.testing.assert_array_equal(proba, comp.predict_proba(Xin))  # same ONNX, same runtime
    np.testing.assert_array_equal(proba, full.predict_proba(Xin))
    np.testing.assert_array_equal(deployed.predict(Xin), comp.predict(Xin))
    assert deployed.score(Xin, y[: len(proba)]) == comp.score(Xin, y[: len(proba)])


def test_loading_and_predicting_imports_no_torch(compressed, folders):
    """A fresh interpreter loads the folder and predicts images of the model's size."""
    comp, X, _ = compressed
    X16 = adapt_images((X[:5] * 255).astype(np.uint8), 16).numpy()
    np.save(folders[1].parent / "x16.npy", X16)
    code = (
        "import sys, numpy as np, skft\n"
        f"model = skft.load({str(folders[1])!r})\n"
        f"print(model.predict(np.load({str(folders[1].parent / 'x16.npy')!r})).tolist())\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'skorch', 'onnx', 'sklearn') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    predicted, imported = out.stdout.strip().splitlines()
    assert predicted == str(comp.predict(X16).tolist())
    assert imported == "[]"


def test_fit_and_partial_fit_name_the_full_folder(compressed, folders):
    model = skft.load(folders[1])
    X, y = compressed[1:]
    for method in (model.fit, model.partial_fit):
        with pytest.raises(TypeError, match=r"cannot be trained.*Compressed\.save\(path\)"):
            method(X, y)


def test_a_deployed_model_pickles(compressed, folders):
    model = skft.load(folders[1])
    again = pickle.loads(pickle.dumps(model))
    X = compressed[1]
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_images_of_other_channels_are_refused(folders, digits):
    rgb = np.repeat(digits[0][:4, :, :, None], 3, axis=3)
    with pytest.raises(ValueError, match=r"input shape \(3, 16, 16\).*fitted on \(1, 16, 16\)"):
        skft.load(folders[1]).predict(rgb)


def test_regressor_round_trip(digits, fast, tmp_path):
    X, labels = digits
    y = labels + np.linspace(0, 0.5, len(labels))
    comp = Compressed(FineTunedRegressor(**fast), quantize="int8", random_state=0).fit(X, y)
    model = skft.load(comp.save(tmp_path / "r.skft", deploy=True))
    assert isinstance(model, DeployedRegressor) and not hasattr(model, "predict_proba")
    assert not hasattr(model, "classes_")
    np.testing.assert_array_equal(model.predict(X), comp.predict(X))
    assert model.predict(X).shape == (len(X),) and model.score(X, y) == comp.score(X, y)


def test_tabular_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    est = FineTunedClassifier(
        "mlp", pretrained=False, augment="none", max_epochs=2, random_state=0, verbose=0
    )
    comp = Compressed(est, quantize="int8", random_state=0).fit(X, y)
    model = skft.load(comp.save(tmp_path / "t.skft", deploy=True))
    np.testing.assert_array_equal(model.predict_proba(X), comp.predict_proba(X))
    with pytest.raises(ValueError, match="X has 4 features.*expecting 5"):
        model.predict(X[:, :4])


def test_without_quantize_the_pruned_network_is_exported(digits, fast, tmp_path):
    """No ONNX model yet: the fp32 network is exported, close to PyTorch's outputs."""
    comp = Compressed(FineTunedClassifier(**fast), prune=0.3, recover_epochs=1).fit(*digits)
    model = skft.load(comp.save(tmp_path / "p.skft", deploy=True))
    X = digits[0]
    np.testing.assert_allclose(model.predict_proba(X), comp.predict_proba(X), atol=1e-5)


class _PretendPretrained:
    """smallcnn under a name that claims pretrained weights: the fit plan picks the size."""

    @skft.hookimpl
    def register_backbones(self, register):
        from skft.builtin.small_backbones import build_smallcnn

        register(
            skft.BackboneSpec(
                name="pretendnet",
                build=lambda pretrained, shape: build_smallcnn(False, shape),
                default_image_size=32,
            )
        )


def test_the_size_the_fit_plan_chose_is_deployed(digits, tmp_path):
    pm.register(_PretendPretrained(), "skft-pretend")
    try:
        est = FineTunedClassifier("pretendnet", max_epochs=1, random_state=0, verbose=0)
        comp = Compressed(est, quantize="int8", random_state=0).fit(*digits)
        assert comp.estimator_.image_size is None and comp.estimator_.input_shape_[-1] == 64
        model = skft.load(comp.save(tmp_path / "plan.skft", deploy=True))
        assert model.image_size == 64
        X = digits[0]
        np.testing.assert_array_equal(model.predict_proba(X), comp.predict_proba(X))
    finally:
        pm.unregister(name="skft-pretend")


def test_skft_predict_reads_a_deploy_folder(compressed, folders, tmp_path, capsys):
    comp, X, _ = compressed
    np.savez(tmp_path / "new.npz", X=X[:10])
    rows = {}
    for name, folder in zip(("full", "deploy"), folders):
        out = tmp_path / f"{name}.csv"
        assert main(["predict", str(folder), str(tmp_path / "new.npz"), "--out", str(out)]) == 0
        with out.open() as fh:
            rows[name] = list(csv.reader(fh))
    assert rows["deploy"] == rows["full"]
    assert rows["deploy"][0] == ["id", "prediction"] + [f"proba_{c}" for c in sorted(LABELS)]
    assert [r[1] for r in rows["deploy"][1:]] == list(comp.predict(X[:10]))


def test_a_deploy_folder_is_not_written_over_a_full_one(compressed, folders, tmp_path):
    with pytest.raises(ValueError, match="holds a full model"):
        compressed[0].save(folders[0], deploy=True)


def test_a_backbone_whose_adapter_cannot_be_deployed_is_refused(compressed, tmp_path):
    comp = pickle.loads(pickle.dumps(compressed[0]))
    spec = comp.estimator_.backbone_spec_
    comp.estimator_.backbone_spec_ = dataclasses.replace(spec, adapter=lambda X, **kw: X)
    with pytest.raises(ValueError, match="cannot write a deploy folder.*full folder"):
        comp.save(tmp_path / "x.skft", deploy=True)
    assert not (tmp_path / "x.skft").exists()


def test_multilabel_deploy_folder_predicts_label_sets(digits, fast_settings, tmp_path):
    from skft.io.trust import ModelFileError

    X, y = digits
    Y = np.stack([y % 2 == 0, y >= 1], axis=1).astype(np.int64)  # two tags, both vary
    fitted = FineTunedClassifier(**fast_settings).fit(X, Y)
    comp = Compressed(pickle.loads(pickle.dumps(fitted)), prefit=True).fit(X, Y)
    folder = comp.save(tmp_path / "deploy.skft", deploy=True)
    deployed = skft.load(folder)
    assert deployed.multilabel_ and deployed.threshold_ == fitted.threshold
    proba = deployed.predict_proba(X)
    np.testing.assert_allclose(proba, fitted.predict_proba(X), atol=1e-5)
    pred = deployed.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba > fitted.threshold).astype(int))
    clear = np.abs(proba - fitted.threshold) > 1e-4  # off the threshold: the same decision
    np.testing.assert_array_equal(pred[clear], fitted.predict(X)[clear])
    assert deployed.score(X, Y) == np.mean((pred == Y).all(axis=1))
    # a config whose output does not fit multi-label is refused when read
    config = json.loads((folder / "deploy.json").read_text())
    for change, match in [
        ({"output": "softmax"}, "output must be 'sigmoid'"),
        ({"threshold": 1.5}, r"threshold must be a number in \(0, 1\)"),
        ({"multilabel": False}, "multilabel must be true"),
    ]:
        (folder / "deploy.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(ModelFileError, match=match):
            skft.load(folder)
    single = {k: v for k, v in config.items() if k not in ("multilabel", "threshold")}
    (folder / "deploy.json").write_text(json.dumps(single))
    with pytest.raises(ModelFileError, match="multilabel missing"):
        skft.load(folder)
