"""Text batches know their longest text on the host: no read-back from the device (issue 26)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from skft import FineTunedClassifier
from skft.data.adapters import sample_lengths
from skft.training.cache import feature_cache

import skft_transformers
from skft_transformers import _model
from skft_transformers._text import adapt_text

SHORT, LONG = "ok", " ".join(["free"] * 20)  # 3 and 22 tokens with [CLS] and [SEP]


def _data(n: int = 8):
    X = [SHORT] * n + [LONG] * n + ["see you at home"] * n  # 6 tokens
    y = (["ham"] * n + ["spam"] * n + ["ham"] * n)[: len(X)]
    return X, y


def test_text_lengths_are_the_token_counts(tiny_bert):
    X = adapt_text([SHORT, LONG, "see you at home"], tiny_bert)
    assert X.shape[-1] == 22
    lengths = sample_lengths(skft_transformers.TEXT, X)
    assert lengths.device.type == "cpu" and lengths.tolist() == [3, 22, 6]


class _Recorder:
    """Each module call's input length and entry group, and scalar reads inside forward."""

    READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist")

    def __init__(self, net, monkeypatch):
        self.calls: list[tuple[int, int, int]] = []  # (start group, batch, length)
        self.reads: list[str] = []
        self.inside = False
        module = net.module_
        forward = module.forward

        def recorded(x, start=0, **kwargs):
            axis = -1 if start == 0 else 1
            self.calls.append((start, x.shape[0], x.shape[axis]))
            self.inside = True
            try:
                return forward(x, start=start, **kwargs)
            finally:
                self.inside = False

        monkeypatch.setattr(module, "forward", recorded)
        for name in self.READS:
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._trip(name, real))

    def _trip(self, name, real):
        def read(t, *args, **kwargs):
            if self.inside:
                self.reads.append(name)
            return real(t, *args, **kwargs)

        return read


@contextlib.contextmanager
def _as_on_cuda(monkeypatch):
    """The mask options the layers use on CUDA, on the CPU: no ``mask.all()`` question."""
    monkeypatch.setattr(
        _model, "_mask_options", lambda create, hidden: _model._no_padding_check(create)
    )
    yield


@pytest.mark.parametrize("frozen_depth", [0, 1, "all"])
def test_batches_reach_the_model_trimmed_to_their_longest_text(fast, frozen_depth, monkeypatch):
    X, y = _data()
    feature_cache.clear()
    settings = {**fast, "max_epochs": 1, "batch_size": 8, "frozen_depth": frozen_depth}
    clf = FineTunedClassifier(**settings, iterator_train__shuffle=False)
    clf.fit(X, y)  # built; now record a second fit of the same estimator and a predict
    rec = _Recorder(clf, monkeypatch)
    with _as_on_cuda(monkeypatch):
        clf.partial_fit(X, y)
        proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    # every batch (training, and prediction, raw or as cached features): its own longest text
    assert rec.calls and sorted({length for _, _, length in rec.calls}) == [3, 6, 22]
    # the layers ask the device nothing: no scalar read while the module runs
    assert rec.reads == []


def test_the_prefix_cache_trims_its_chunks_and_pads_features_back(fast, monkeypatch):
    X, y = _data()
    feature_cache.clear()
    lengths_seen: list[int] = []
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1, "frozen_depth": "all", "batch_size": 8})
    real = _model.Embeddings.forward

    def spy(self, x):
        lengths_seen.append(x.shape[-1])
        return real(self, x)

    monkeypatch.setattr(_model.Embeddings, "forward", spy)
    clf.fit(X, y)
    # the cache runs the encoder on chunks of 64, each trimmed to its longest text
    assert lengths_seen == [22]
    lengths_seen.clear()
    short = [SHORT, "see you at home"] * 4
    clf.predict_proba(short)
    assert lengths_seen == [6]  # a prediction of short texts costs what they need


def test_untrimmed_batches_give_the_same_outputs(fast):
    X, y = _data(4)
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(X, y)
    Xt = adapt_text([SHORT, "see you at home"], fast["backbone"][3:])
    module = clf.module_.eval()
    with torch.no_grad():
        padded = torch.nn.functional.pad(Xt, (0, 10))  # 10 more padding tokens
        np.testing.assert_allclose(module(padded).numpy(), module(Xt).numpy(), atol=1e-5)


def test_on_cuda_the_attention_mask_never_asks_for_padding():
    from transformers.masking_utils import create_bidirectional_mask

    class OnCuda:
        device = torch.device("cuda")

    assert _model._mask_options(create_bidirectional_mask, OnCuda()) == {
        "allow_is_bidirectional_skip": False
    }
    assert _model._mask_options(create_bidirectional_mask, torch.zeros(1)) == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_text_batches_on_cuda_do_not_synchronise(fast):
    X, y = _data()
    clf = FineTunedClassifier(**{**fast, "device": "cuda", "max_epochs": 1}).fit(X, y)
    Xt = adapt_text(X, fast["backbone"][3:]).cuda()
    batch = Xt[:8, :, : int(sample_lengths(skft_transformers.TEXT, Xt[:8].cpu()).max())]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            clf.module_(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
