"""The CUDA speed paths, exercised on CPU: autocast precision, channels-last, resident data,
torch.compile."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import skft.params.setup
import skft.training.speed
from skft import FineTunedClassifier, FineTunedRegressor
from skft.params.setup import autocast_dtype
from skft.specs import BackboneSpec


def test_precision_auto_is_fp32_on_cpu_and_names_resolve():
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("fp32", "cuda") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    assert autocast_dtype("fp16", None) is torch.float16
    if not torch.cuda.is_available():
        assert autocast_dtype("auto", "cuda") is None  # no CUDA: nothing to autocast on


def test_bf16_autocast_on_cpu_is_close_to_fp32(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "max_epochs": 4}).fit(X, y)
    fp32 = clf.predict_proba(X)
    bf16 = clf.set_params(precision="bf16").predict_proba(X)
    assert bf16.dtype == np.float32  # outputs come back in fp32
    assert not np.array_equal(bf16, fp32)  # autocast did run in bf16
    np.testing.assert_allclose(bf16, fp32, atol=0.03)
    trained = FineTunedClassifier(**{**fast, "max_epochs": 4}, precision="bf16").fit(X, y)
    assert np.isfinite(trained.history[:, "train_loss"]).all()
    assert (trained.predict(X) == clf.predict(X)).mean() > 0.8


def test_fp16_scales_the_loss(digits, fast):
    X, y = digits
    reg = FineTunedRegressor(**fast, precision="fp16").fit(X, y.astype(float))
    scaler = reg.__dict__["_grad_scaler"]
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.get_scale() > 1
    assert np.isfinite(reg.predict(X)).all()
    assert "_grad_scaler" not in pickle.loads(pickle.dumps(reg)).__dict__
    assert FineTunedRegressor(**fast).fit(X, y.astype(float)).__dict__.get("_grad_scaler") is None


def test_unknown_precision_is_refused_before_work(digits, fast):
    X, y = digits
    with pytest.raises(ValueError, match=r"precision must be 'auto', 'fp32', 'bf16' or 'fp16'"):
        FineTunedClassifier(**fast, precision="half").fit(X, y)


def test_channels_last_gives_the_same_outputs(digits, fast, monkeypatch):
    X, y = digits
    settings = {**fast, "augment_strength": 0.5}
    expected = FineTunedClassifier(**settings).fit(X, y).predict_proba(X)
    monkeypatch.setattr(skft.params.setup, "CHANNELS_LAST_DEVICES", ("cuda", "cpu"))
    clf = FineTunedClassifier(**settings).fit(X, y)
    conv = clf.module_.groups[1][0].weight  # (32, 16, 3, 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    tabular = FineTunedRegressor("mlp", pretrained=False, augment="none", max_epochs=1).fit(
        X.reshape(60, -1), y
    )
    assert clf.setup_.channels_last
    assert not tabular.setup_.channels_last  # not a convolutional image backbone


def test_resident_training_data(digits, fast, monkeypatch):
    X, y = digits
    X8 = (X * 255).astype(np.uint8)
    settings = {**fast, "feature_cache": False}
    expected = FineTunedClassifier(**settings).fit(X8, y).predict_proba(X8)  # not resident
    asked, moved = [], []
    speed = skft.training.speed
    monkeypatch.setattr(speed, "device_budget", lambda device: asked.append(device) or 2**40)
    to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        if self.dtype == torch.uint8 and self.ndim == 4 and len(self) == len(X):
            moved.append(args)
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    clf = FineTunedClassifier(**settings).fit(X8, y)
    assert asked == ["cpu"] and moved == [("cpu",)]  # the whole uint8 set, once per fit
    np.testing.assert_array_equal(clf.predict_proba(X8), expected)
    monkeypatch.setattr(skft.training.speed, "device_budget", lambda device: 0)  # does not fit
    moved.clear()
    FineTunedClassifier(**settings).fit(X8, y)
    assert moved == []


def test_compile_runs_the_module_through_torch_compile(digits, fast, monkeypatch):
    # a real torch.compile of even this tiny network takes over a minute on the test machine
    # (76.9 s measured); check the wiring, with torch.compile replaced by a recording wrapper
    calls = []

    class Compiled(torch.nn.Module):
        def __init__(self, module, **kwargs):
            super().__init__()
            self._orig_mod = module
            calls.append(kwargs)
            self.runs = 0

        def forward(self, *args, **kwargs):
            self.runs += 1
            return self._orig_mod(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", Compiled)
    X, y = digits
    expected = FineTunedClassifier(**fast).fit(X, y).predict_proba(X)
    assert calls == []
    clf = FineTunedClassifier(**fast, compile=True, compile__mode="reduce-overhead").fit(X, y)
    assert calls == [{"mode": "reduce-overhead"}]
    assert type(clf.module_).__name__ == "FineTuneModule"  # the module itself is untouched
    assert clf.__dict__["_compiled_module"].runs == len(clf.history) * 4  # 60 samples / 16
    np.testing.assert_array_equal(clf.predict_proba(X), expected)
    restored = pickle.loads(pickle.dumps(clf))
    assert "_compiled_module" not in restored.__dict__
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    assert len(calls) == 2  # compiled again, lazily, after unpickling
    with pytest.raises(ValueError, match="compile must be True or False"):
        FineTunedClassifier(**fast, compile="yes").fit(X, y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_defaults_use_the_speed_paths(digits, fast, monkeypatch):
    X, y = digits
    X8 = (X * 255).astype(np.uint8)
    sizes = []
    real = skft.training.speed.device_budget
    speed = skft.training.speed
    monkeypatch.setattr(speed, "device_budget", lambda d: sizes.append(real(d)) or sizes[-1])
    clf = FineTunedClassifier(**{**fast, "device": "cuda", "feature_cache": False}).fit(X8, y)
    assert clf.setup_.channels_last and sizes and sizes[0] > X8.nbytes
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    assert clf.setup_.autocast is expected
    reference = FineTunedClassifier(**{**fast, "device": "cpu"}).fit(X8, y).predict_proba(X8)
    assert (clf.predict_proba(X8).argmax(1) == reference.argmax(1)).mean() > 0.8


def test_auto_precision_follows_the_backbone_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", "cuda") is torch.bfloat16
    assert autocast_dtype("auto", "cuda", cuda_precision="fp32") is None  # text encoders
    assert autocast_dtype("auto", "cpu", cuda_precision="bf16") is None
    assert autocast_dtype("bf16", "cuda", cuda_precision="fp32") is torch.bfloat16  # asked for
    with pytest.raises(ValueError, match="cuda_precision must be 'bf16' or 'fp32'"):
        BackboneSpec(name="x", build=lambda p, s: None, cuda_precision="fp16")
