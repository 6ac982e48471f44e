"""skft.Compressed: pruning, recovery, int8 through ONNX Runtime; to_onnx; bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from torch import nn

import skft
from skft import BackboneParts, BackboneSpec, Compressed, FineTunedClassifier, FineTunedRegressor
from skft.data.adapters import adapt_images, as_float_images
from skft.deploy.compress import prune_module
from skft.deploy.onnx_export import OnnxModel, check_calibration
from skft.plugins import pm
from skft.training.schedule import schedule_factor


@pytest.fixture(scope="module")
def fitted(digits, fast_settings):
    """A smallcnn classifier fitted once (3 epochs) for the tests that compress it prefit."""
    X, y = digits
    return FineTunedClassifier(**{**fast_settings, "max_epochs": 3}).fit(X, y)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_compressed_predicts_scores_clones_and_pickles(digits, fast):
    X, y = digits
    comp = Compressed(FineTunedClassifier(**fast), prune=0.3, quantize="int8", recover_epochs=1)
    comp.fit(X, y)
    pred = comp.predict(X)
    assert pred.shape == (len(X),) and set(pred) <= set(y)
    proba = comp.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert 0.0 <= comp.score(X, y) <= 1.0
    assert comp.score(X, y) == np.mean(pred == y)
    assert comp.onnx_model_ is not None and len(comp.estimator_.history) == fast["max_epochs"] + 1
    report = comp.compression_report_
    assert report["params_after"] < report["params_before"]
    assert report["onnx_bytes"] < report["fp32_bytes_after"]  # int8 weights
    assert (report["prune"], report["quantize"], report["ignored_layers"]) == (
        0.3,
        "int8",
        ["head"],
    )
    again = pickle.loads(pickle.dumps(comp))
    assert again.onnx_model_._session is None  # rebuilt from the bytes on first use
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    cloned = clone(comp)
    assert cloned.get_params()["prune"] == 0.3 and not hasattr(cloned, "estimator_")


def test_prefit_uses_the_fitted_estimator_without_refitting(digits, fitted):
    X, y = digits
    comp = Compressed(fitted, prefit=True).fit(X, y)  # no pruning, no quantization
    np.testing.assert_array_equal(comp.predict_proba(X), fitted.predict_proba(X))
    assert comp.estimator_ is not fitted and len(comp.estimator_.history) == 3
    with pytest.raises(skft.deploy.compress.NotFittedError, match="prefit=True"):
        Compressed(clone(fitted), prefit=True).fit(X, y)


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_pruning_removes_the_requested_width(fitted, ratio):
    module = fitted.module_
    import copy

    module = copy.deepcopy(module)
    before = n_params(module)
    widths = [g[0].out_channels for g in module.groups]
    x = torch.as_tensor(as_float_images(adapt_images(np.zeros((4, 8, 8)), 16)))
    report = prune_module(module, x[:1], ratio)
    # every conv keeps floor((1 - ratio) * width) channels
    assert [g[0].out_channels for g in module.groups] == [int(w * (1 - ratio)) for w in widths]
    assert module.head.out_features == 3 and report["unhandled_layers"] == []
    assert report["unpruned_layers"] == ["preprocess"] or "head" not in report["unpruned_layers"]
    # a conv pruned on both sides keeps (1-r)^2 of its weights, the first conv and the
    # head (one side) 1-r; smallcnn's params are mostly conv-conv, so between the two
    kept = n_params(module) / before
    assert (1 - ratio) ** 2 - 0.03 <= kept <= 1 - ratio
    out = module.eval()(x)
    assert out.shape == (4, 3) and torch.isfinite(out).all()


def test_onnx_export_matches_pytorch(digits, fitted, tmp_path):
    X, _ = digits
    path = fitted.to_onnx(tmp_path / "model.onnx")
    x = as_float_images(adapt_images(X[:7], 16))
    with torch.no_grad():
        expected = fitted.module_.eval()(x).numpy()
    got = OnnxModel(path.read_bytes()).run(x.numpy())  # batch size 7: a dynamic axis
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_regressor_exports_and_compresses(digits, fast, tmp_path):
    X, y = digits
    reg = FineTunedRegressor(**fast).fit(X, y.astype(float))
    x = as_float_images(adapt_images(X[:5], 16))
    got = OnnxModel(reg.to_onnx(tmp_path / "r.onnx").read_bytes()).run(x.numpy())
    np.testing.assert_allclose(got, reg.module_.eval()(x).detach().numpy(), atol=1e-5)
    comp = Compressed(reg, quantize="dynamic", prefit=True).fit(X, y.astype(float))
    assert comp.predict(X).shape == (len(X),)
    assert abs(comp.predict(X) - reg.predict(X)).max() < 0.5  # dynamic int8 stays close
    assert not hasattr(comp, "predict_proba") or pytest.raises(
        AttributeError, comp.predict_proba, X
    )


def test_grid_search_over_prune(digits, fast):
    X, y = digits
    est = Compressed(FineTunedClassifier(**{**fast, "max_epochs": 1}), recover_epochs=1)
    search = GridSearchCV(est, {"prune": [0.0, 0.3]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_prune"]) == [0.0, 0.3]
    assert search.best_estimator_.compression_report_["prune"] == search.best_params_["prune"]
    assert search.predict(X).shape == (len(X),)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"prune": 0.95}, r"prune must be a float in \[0, 0.9\]"),
        ({"prune": -0.1}, r"prune must be a float in \[0, 0.9\]"),
        ({"prune": "half"}, r"prune must be a float"),
        ({"quantize": "int4"}, r"quantize='int4'.*\[None, 'int8', 'int8-signed', 'dynamic'\]"),
        ({"recover_epochs": -1}, "recover_epochs must be an int >= 0"),
        ({"calibration_size": 0}, "calibration_size must be an int >= 1"),
        ({"keep_fp32": -1}, "keep_fp32 must be an int >= 0"),
        ({"round_to": 0}, "round_to must be an int >= 1"),
        ({"prune_frozen": "yes"}, "prune_frozen must be True or False"),
        ({"distill": 1.5}, r"distill must be a float in \[0, 1\]"),
        ({"distill": True}, r"distill must be a float in \[0, 1\]"),
    ],
)
def test_bad_parameters_fail_before_any_work(digits, fitted, params, words, monkeypatch):
    X, y = digits
    monkeypatch.setattr(FineTunedClassifier, "fit", lambda *a, **k: pytest.fail("fitted"))
    with pytest.raises(ValueError, match=words):
        Compressed(fitted, **params).fit(X, y)


def test_calibration_data_of_the_wrong_shape(digits, fitted):
    X, y = digits
    rgb = np.zeros((4, 8, 8, 3))  # the classifier was fitted on grayscale
    with pytest.raises(ValueError, match="calibration data: .*channels must match"):
        Compressed(fitted, quantize="int8", prefit=True).fit(X, y, calibration_X=rgb)
    with pytest.raises(ValueError, match=r"calibration data must have shape \(N, 1, 16, 16\)"):
        check_calibration(np.zeros((4, 3, 16, 16)), (None, 1, 16, 16))
    with pytest.raises(ValueError, match="calibration data must have shape"):
        check_calibration(np.zeros((16, 16)), (None, 1, 16, 16))


class Scale(nn.Module):
    """A layer torch-pruning has no rule for: a bare per-channel parameter."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        return x * self.weight


class CumMax(nn.Module):
    """An operation the ONNX exporter does not support."""

    def forward(self, x):
        return x.cummax(1)[0]


class OddLayersPlugin:
    @skft.hookimpl
    def register_backbones(self, register):
        def build(pretrained, input_shape):
            groups = [
                ("a", nn.Sequential(nn.Conv2d(input_shape[0], 8, 3), nn.ReLU())),
                ("b", nn.Sequential(nn.Conv2d(8, 8, 3), Scale(8), nn.ReLU())),
                ("c", nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU())),
            ]
            neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), CumMax())
            return BackboneParts(groups=groups, neck=neck, feature_dim=16)

        register(BackboneSpec(name="oddlayers", build=build, has_pretrained=False))


@pytest.fixture
def odd_layers(digits, fast):
    plugin = OddLayersPlugin()
    skft.plugins.load_plugins()
    pm.register(plugin, "oddlayers")
    try:
        X, y = digits
        yield FineTunedClassifier(**{**fast, "backbone": "oddlayers", "max_epochs": 1}).fit(X, y)
    finally:
        pm.unregister(plugin)


def test_layers_the_pruner_cannot_handle_are_left_alone(digits, odd_layers):
    X, y = digits
    comp = Compressed(odd_layers, prune=0.5, recover_epochs=0, round_to=None, prefit=True)
    comp.fit(X, y)
    groups = comp.estimator_.module_.groups
    report = comp.compression_report_
    assert report["unhandled_layers"] == ["groups.1.1"]  # Scale
    assert report["unpruned_layers"] == ["groups.1.1"]  # the convs lost input or output width
    # b's outputs feed Scale: left alone; a's and c's halved
    assert [g[0].out_channels for g in groups] == [4, 8, 8]
    assert comp.predict(X).shape == (len(X),)


def test_unexportable_backbone_names_the_operation(digits, odd_layers, tmp_path):
    X, y = digits
    with pytest.raises(ValueError, match=r"backbone 'oddlayers' .*'aten::cummax'"):
        odd_layers.to_onnx(tmp_path / "odd.onnx")
    with pytest.raises(ValueError, match="cannot be exported to ONNX"):
        Compressed(odd_layers, quantize="dynamic", prefit=True).fit(X, y)


def test_recalibrate_batchnorm_recomputes_running_statistics():
    from skft.deploy.compress import recalibrate_batchnorm

    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.1)
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    module = torch.nn.Sequential(conv, bn, torch.nn.Dropout(0.5)).eval()
    X = torch.rand(100, 3, 8, 8)
    assert recalibrate_batchnorm(module, X, "cpu", batch=25) == 1  # equal batches: the data mean
    with torch.no_grad():
        features = conv(X)
    torch.testing.assert_close(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert bn.momentum == 0.1 and not module.training and not bn.training  # all restored
    # eval mode now matches train mode on the same data (the point of recalibrating)
    with torch.no_grad():
        eval_out = bn(features)
    assert abs(float(eval_out.mean())) < 1e-3


def test_round_to_keeps_channel_counts_multiples_of_it(fitted):
    import copy

    module = copy.deepcopy(fitted.module_)
    widths = [g[0].out_channels for g in module.groups]
    x = torch.as_tensor(as_float_images(adapt_images(np.zeros((2, 8, 8)), 16)))
    prune_module(module, x[:1], 0.3, round_to=8)
    kept = [g[0].out_channels for g in module.groups]
    assert all(k % 8 == 0 and 0 < k < w for k, w in zip(kept, widths)), (widths, kept)
    assert module.eval()(x).shape == (2, 3)


@pytest.mark.parametrize(("prune", "quantize"), [(0.3, None), (0.0, "int8"), (0.3, "int8")])
def test_save_and_load_round_trip(digits, fitted, tmp_path, prune, quantize):
    X, y = digits
    comp = Compressed(fitted, prune=prune, quantize=quantize, recover_epochs=1, prefit=True)
    comp.set_params(random_state=0).fit(X, y)
    folder = comp.save(tmp_path / "small.skft")
    assert {p.name for p in folder.iterdir()} == {"compressed.json", "estimator"} | (
        {"model.onnx"} if quantize else set()
    )
    again = skft.load(folder)
    assert isinstance(again, Compressed) and again.get_params()["prune"] == prune
    np.testing.assert_array_equal(again.predict_proba(X), comp.predict_proba(X))
    assert again.compression_report_ == comp.compression_report_
    if quantize:
        (folder / "model.onnx").write_bytes(b"x" + (folder / "model.onnx").read_bytes()[1:])
        with pytest.raises(skft.io.persist.ModelFileError, match="sha256"):
            skft.load(folder)


@pytest.mark.parametrize("prune_frozen", [False, True])
def test_frozen_groups_keep_their_width_unless_asked(digits, fast_settings, tmp_path, prune_frozen):
    """Recovery trains only what the estimator trains: its frozen groups stay whole."""
    X, y = digits
    est = FineTunedClassifier(**{**fast_settings, "frozen_depth": 1, "max_epochs": 2}).fit(X, y)
    before = {k: v.clone() for k, v in est.module_.groups[0].state_dict().items()}
    comp = Compressed(est, prune=0.5, recover_epochs=1, prefit=True, prune_frozen=prune_frozen)
    comp.fit(X, y)
    first = comp.estimator_.module_.groups[0].state_dict()
    unchanged = all(
        first[k].shape == v.shape and torch.equal(first[k], v) for k, v in before.items()
    )
    assert unchanged != prune_frozen
    assert comp.compression_report_["kept_groups"] == ([] if prune_frozen else ["block1"])
    assert comp.compression_report_["params_after"] < comp.compression_report_["params_before"]
    again = skft.load(comp.save(tmp_path / "c.skft"))  # re-pruned to the same shapes
    np.testing.assert_array_equal(again.predict_proba(X), comp.predict_proba(X))


def test_pruned_frozen_groups_are_re_tuned_then_frozen_again(digits, fast_settings):
    """prune_frozen=True: the recovery epochs train the pruned frozen groups too."""
    X, y = digits
    est = FineTunedClassifier(**{**fast_settings, "frozen_depth": 1, "max_epochs": 1}).fit(X, y)
    settings = {"prune": 0.5, "prefit": True, "prune_frozen": True}
    pruned_only = Compressed(est, recover_epochs=0, **settings).fit(X, y).estimator_
    tuned = Compressed(est, recover_epochs=1, **settings).fit(X, y).estimator_
    first = dict(pruned_only.module_.groups[0].named_parameters())
    again = dict(tuned.module_.groups[0].named_parameters())
    assert all(first[k].shape == p.shape for k, p in again.items())  # the same pruning
    assert any(not torch.equal(first[k], p) for k, p in again.items())  # then re-tuned
    assert tuned.frozen_depth_ == 1 and tuned.freeze_state_ == est.freeze_state_
    assert not any(p.requires_grad for p in tuned.module_.groups[0].parameters())
    assert len(tuned.history) == len(est.history) + 1


@pytest.mark.parametrize("kind", ["constant", "linear"])
def test_recovery_runs_the_schedule_afresh(digits, fast_settings, kind, rate_recorder):
    """After pruning, the estimator's lr_schedule restarts over the recovery epochs."""
    X, y = digits  # 60 images, batches of 16: 4 steps an epoch
    settings = {**fast_settings, "lr": 1e-2, "lr_schedule": kind, "max_epochs": 2}
    est = FineTunedClassifier(**settings, callbacks=[("rec", rate_recorder)]).fit(X, y)
    comp = Compressed(est, prune=0.3, recover_epochs=3, prefit=True).fit(X, y)
    head = [r["head"] for r in dict(comp.estimator_.callbacks_)["rec"].rates]
    rates = head[8:]  # the 3 recovery epochs
    steps = 3 * 4
    assert len(rates) == steps
    base = [rate / schedule_factor(kind, i, steps) for i, rate in enumerate(rates)]
    np.testing.assert_allclose(base, base[0], rtol=1e-6)  # the factor of a fresh schedule
    first = dict(est.callbacks_)["rec"].rates[0]["head"]
    assert base[0] == pytest.approx(first / schedule_factor(kind, 0, 8))
    assert not hasattr(comp.estimator_, "schedule_span_")


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_distill_one_learns_from_the_teacher_not_the_labels(digits, fast_settings, kind):
    """distill=1: the recovery loss is the teacher's alone, so shuffled labels change nothing."""
    X, y = digits
    y = y if kind == "classifier" else y.astype(np.float32)
    cls = FineTunedClassifier if kind == "classifier" else FineTunedRegressor
    est = cls(**{**fast_settings, "random_state": 0}).fit(X, y)
    shuffled = np.random.default_rng(0).permutation(y)
    out = {}
    for distill in (0.0, 1.0):
        for name, labels in (("true", y), ("shuffled", shuffled)):
            comp = Compressed(est, prune=0.3, recover_epochs=2, distill=distill, prefit=True)
            comp.fit(X, labels)
            out[distill, name] = comp.predict_proba(X) if kind == "classifier" else comp.predict(X)
            assert "get_loss" not in vars(comp.estimator_)  # the method is back
    assert comp.compression_report_["distill"] == 1.0
    assert not np.allclose(out[0.0, "true"], out[0.0, "shuffled"], atol=1e-4)  # labels count
    np.testing.assert_allclose(out[1.0, "true"], out[1.0, "shuffled"], atol=1e-5)
