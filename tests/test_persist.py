"""save(path) / skft.load(path): safetensors + JSON, no code runs on load."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft.io.persist import ModelFileError
from skft.plugins import pm

FIXTURE = Path(__file__).parent / "data" / "iris_mlp.skft"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits, fast_settings):
    X, y = digits
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = FineTunedClassifier(**fast_settings).fit(X, labels)
    path = clf.save(tmp_path_factory.mktemp("m") / "model.skft")
    return clf, path


def test_round_trip_classifier_with_string_labels(saved, digits):
    clf, path = saved
    X, _ = digits
    loaded = skft.load(path)
    assert type(loaded) is FineTunedClassifier
    assert loaded.classes_.dtype == clf.classes_.dtype and list(loaded.classes_) == [
        "cat",
        "dog",
        "emu",
    ]
    assert loaded.get_params()["lr"] == clf.get_params()["lr"]
    assert loaded.optimizer is torch.optim.AdamW
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]


@pytest.mark.parametrize("labels", [[True, False], [3, 7]])
def test_round_trip_keeps_label_dtype(digits, fast, tmp_path, labels):
    X, y = digits
    yl = np.array(labels)[y % 2]
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(X, yl)
    loaded = skft.load(clf.save(tmp_path / "m.skft"))
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_round_trip_regressor_2d_targets(digits, fast, tmp_path):
    X, y = digits
    Y = np.c_[y * 10.0, -y + 0.5]
    reg = FineTunedRegressor(**fast).fit(X, Y)
    loaded = skft.load(reg.save(tmp_path / "r.skft"))
    assert type(loaded) is FineTunedRegressor and loaded.predict(X).shape == (len(X), 2)
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), rtol=1e-6, atol=1e-6)


def test_saved_fixture_predicts_fixed_outputs():
    """A file written by an earlier skft: a format change that breaks old files fails here."""
    iris = load_iris()
    X = iris.data.astype(np.float32)[[0, 60, 120, 149]]
    model = skft.load(FIXTURE)
    assert list(model.predict(X)) == ["setosa", "versicolor", "virginica", "virginica"]
    expected = [
        [0.9988, 0.0012, 0.0],
        [0.0177, 0.9795, 0.0028],
        [0.0, 0.0522, 0.9478],
        [0.0, 0.1997, 0.8003],
    ]
    np.testing.assert_allclose(model.predict_proba(X), expected, atol=2e-4)


def test_loading_runs_no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert skft.load(FIXTURE).predict(np.zeros((1, 4), np.float32)).shape == (1,)


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "copy.skft"))


def _edit_config(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def test_import_paths_outside_trusted_packages_are_refused(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, lambda c: c["params"].update(criterion={"__import__": "os.system"}))
    with pytest.raises(ModelFileError, match="untrusted types in .*copy.skft: os.system; pass"):
        skft.load(path)


def test_unknown_estimator_class_is_refused(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, lambda c: c.update({"class": "Popen"}))
    with pytest.raises(ModelFileError, match="unknown estimator class 'Popen'"):
        skft.load(path)


def test_tampered_weights_are_named(tmp_path):
    path = _copy(tmp_path)
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match the sha256 recorded"):
        skft.load(path)


def test_truncated_weights_with_matching_digest_are_named(tmp_path):
    import hashlib

    path = _copy(tmp_path)
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    _edit_config(path, lambda c: c.update(weights_sha256=digest))
    with pytest.raises(ModelFileError, match="weights.safetensors does not fit the model"):
        skft.load(path)


def test_corrupt_config_is_named(tmp_path):
    path = _copy(tmp_path)
    (path / "config.json").write_text('{"format": "skft-model", ')
    with pytest.raises(ModelFileError, match="config.json is corrupt"):
        skft.load(path)
    with pytest.raises(ModelFileError, match="no config.json"):
        skft.load(tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04junk")
    with pytest.raises(ModelFileError, match="pickled models"):
        skft.load(tmp_path / "model.joblib")


def test_newer_format_is_refused(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, lambda c: c.update(format_version=99))
    with pytest.raises(ModelFileError, match="format version 99.*upgrade skft"):
        skft.load(path)


class _FakeNetPlugin:
    @skft.hookimpl
    def register_backbones(self, register):
        from skft.builtin.small_backbones import build_smallcnn

        register(skft.BackboneSpec(name="fakenet", build=build_smallcnn, has_pretrained=False))


def test_missing_plugin_is_named(digits, fast, tmp_path):
    X, y = digits
    pm.register(_FakeNetPlugin(), "skft-fakenet")
    try:
        clf = FineTunedClassifier(**{**fast, "backbone": "fakenet", "max_epochs": 1}).fit(X, y)
        path = clf.save(tmp_path / "fake.skft")
        assert "skft-fakenet" in json.loads((path / "config.json").read_text())["plugins"]
    finally:
        pm.unregister(name="skft-fakenet")
    with pytest.raises(
        ModelFileError, match="needs backbone 'fakenet'.*plugin\\(s\\) skft-fakenet"
    ):
        skft.load(path)


class LocalLoss(torch.nn.CrossEntropyLoss):
    pass


def test_unsaveable_parameters_are_refused_by_name(digits, fast, tmp_path):
    from skorch.callbacks import EpochScoring

    X, y = digits
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1, "criterion": LocalLoss}).fit(X, y)
    with pytest.raises(ModelFileError, match="cannot save parameter criterion=.*LocalLoss"):
        clf.save(tmp_path / "a.skft")
    clf = FineTunedClassifier(
        **{**fast, "max_epochs": 1, "callbacks": [EpochScoring("accuracy")]}
    ).fit(X, y)
    with pytest.raises(ModelFileError, match="cannot save parameter callbacks="):
        clf.save(tmp_path / "b.skft")
    sgd = {"optimizer": torch.optim.SGD, "optimizer__momentum": 0.9}
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1, **sgd}).fit(X, y)
    loaded = skft.load(clf.save(tmp_path / "c.skft"))
    assert loaded.optimizer is torch.optim.SGD and loaded.optimizer__momentum == 0.9


def test_pickling_still_works(saved, digits):
    clf, _ = saved
    X, _ = digits
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))


def test_round_trip_with_mlp_head_found_lr_and_early_stopping(digits, fast, tmp_path):
    X, y = digits
    clf = FineTunedClassifier(
        **{**fast, "lr": "find"},
        head="mlp",
        head__hidden=16,
        early_stopping=True,
        label_smoothing=0.1,
    ).fit(X, y)
    loaded = skft.load(clf.save(tmp_path / "m.skft"))
    assert loaded.lr_found_ == clf.lr_found_ and loaded.get_params()["lr"] == "find"
    assert loaded.get_params()["head__hidden"] == 16 and loaded.label_smoothing == 0.1
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    loaded.partial_fit(X, y)  # trains on with the rate found, without running the test again
    assert {g["lr"] for g in loaded.optimizer_.param_groups} == {clf.lr_found_}


def test_optuna_search_saves_its_best_model_and_results(digits, fast, tmp_path):
    X, y = digits
    search = skft.OptunaSearch(
        FineTunedClassifier(**fast), {"lr": [1e-3, 1e-2]}, n_trials=2, cv=2, random_state=0
    ).fit(X, y)
    folder = search.save(tmp_path / "search.skft")
    model = skft.load(folder)
    np.testing.assert_allclose(model.predict_proba(X), search.predict_proba(X), rtol=1e-5)
    results = skft.io.persist.load_search_results(folder)
    assert results["best_params"] == search.best_params_
    assert results["best_score"] == pytest.approx(search.best_score_)
    assert results["cv_results"]["mean_test_score"] == pytest.approx(
        list(search.cv_results_["mean_test_score"])
    )
    assert results["cv_results"]["param_lr"] == [p["lr"] for p in search.cv_results_["params"]]


def test_missing_path_is_named_as_missing(tmp_path):
    missing = tmp_path / "nope.skft"
    with pytest.raises(ModelFileError, match="does not exist") as info:
        skft.load(missing)
    assert str(missing) in str(info.value) and "config.json" not in str(info.value)
    with pytest.raises(ModelFileError, match="no config.json; not a model saved by skft"):
        skft.load(tmp_path)  # exists, but not a model folder
