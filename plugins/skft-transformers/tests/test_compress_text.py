"""Text models through skft.Compressed and to_onnx: export, dynamic int8, pruning."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skft import Compressed, FineTunedClassifier
from skft.data.adapters import adapt_input
from skft.deploy.onnx_export import OnnxModel


@pytest.fixture(scope="module")
def fitted(tiny_bert, texts):
    X, y = texts
    return FineTunedClassifier(
        "hf:" + tiny_bert, max_epochs=4, batch_size=8, lr=1e-3, random_state=0
    ).fit(X, y)


def test_text_onnx_export_matches_pytorch_at_any_length(fitted, tmp_path):
    model = OnnxModel(fitted.to_onnx(tmp_path / "text.onnx").read_bytes())
    for batch in (["ok"], ["free cash now", "see you at home tonight friend", "ok"]):
        x = adapt_input(fitted, batch, fitting=False)  # padded to this batch's longest
        with torch.no_grad():
            expected = fitted.module_.eval()(x).numpy()
        got = model.run(x.float().numpy())
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_export_uses_eager_attention_and_leaves_the_estimator_alone(fitted, tmp_path):
    import onnx

    configs = [m.config for m in fitted.module_.modules() if hasattr(m, "config")]
    assert {c._attn_implementation for c in configs} == {"sdpa"}
    graph = onnx.load(fitted.to_onnx(tmp_path / "text.onnx")).graph
    assert "IsNaN" not in {node.op_type for node in graph.node}  # traced SDPA's NaN guard
    assert {c._attn_implementation for c in configs} == {"sdpa"}  # only the copy changed


def test_dynamic_int8_text_model_agrees_and_pickles(fitted, texts):
    X, y = texts
    comp = Compressed(fitted, quantize="dynamic", prefit=True).fit(X, y)
    report = comp.compression_report_
    assert report["onnx_fusion"] == {"model_type": "bert", "num_heads": 2, "hidden_size": 32}
    assert report["fused_attention"] == 2  # one QAttention per encoder layer
    assert np.mean(comp.predict(X) == fitted.predict(X)) >= 0.9
    assert comp.compression_report_["calibration_agreement"] >= 0.9
    back = pickle.loads(pickle.dumps(comp))
    np.testing.assert_allclose(back.predict_proba(X), comp.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_deberta"])
def test_pruning_removes_heads_and_feed_forward_width(fixture, request, texts, caplog):
    X, y = texts
    folder = request.getfixturevalue(fixture)
    base = FineTunedClassifier(
        "hf:" + folder, max_epochs=2, batch_size=8, lr=1e-3, random_state=0, freeze="depth"
    ).fit(X, y)
    comp = Compressed(base, prune=0.5, recover_epochs=1, prefit=True).fit(X, y)
    report = comp.compression_report_
    assert report["params_after"] < report["params_before"]
    for group in comp.estimator_.module_.groups[1:]:
        attention = next(m for m in group.modules() if hasattr(m, "num_attention_heads"))
        assert attention.num_attention_heads == 1  # 2 heads, half removed
        assert attention.all_head_size == 16  # one head of 16
        layer = group.layer
        assert layer.intermediate.dense.out_features == 32  # feed-forward 64 -> 32
        assert layer.output.dense.in_features == 32
        assert layer.output.dense.out_features == 32  # the residual stream keeps its width
    embeddings = comp.estimator_.module_.groups[0]
    assert all(p.shape[-1] == 32 for p in embeddings.parameters() if p.ndim)  # residual kept
    assert comp.predict(X).shape == (len(X),)
    assert comp.score(X, y) >= 0.5  # runs; recovery is one epoch on a random model
    onnx = Compressed(comp.estimator_, quantize="dynamic", prefit=True).fit(X, y)
    assert np.mean(onnx.predict(X) == comp.predict(X)) >= 0.9  # the pruned model exports
    if fixture == "tiny_bert":  # the heads left are what ONNX Runtime's fusion is told
        assert onnx.compression_report_["onnx_fusion"]["num_heads"] == 1
        assert onnx.compression_report_["fused_attention"] == 2
    # the optimizer's notes (pruned width != residual width) are not logged at the user
    assert not [r for r in caplog.records if r.name.startswith("fusion")]


def test_fused_int8_matches_the_unfused_int8_and_saves(fitted, texts, monkeypatch, tmp_path):
    import skft
    from skft.deploy import compress

    X, y = texts
    fused = Compressed(fitted, quantize="dynamic", prefit=True).fit(X, y)
    again = skft.load(fused.save(tmp_path / "fused.skft"))  # contrib operators reload
    np.testing.assert_allclose(again.predict_proba(X), fused.predict_proba(X), atol=1e-6)
    monkeypatch.setattr(compress, "fusion_hints", lambda module: None)
    plain = Compressed(fitted, quantize="dynamic", prefit=True).fit(X, y)
    assert plain.compression_report_["fused_attention"] == 0
    np.testing.assert_allclose(fused.predict_proba(X), plain.predict_proba(X), atol=0.02)


def test_pruned_text_model_saves_and_loads(tiny_bert, texts, tmp_path):
    import skft

    X, y = texts
    base = FineTunedClassifier(
        "hf:" + tiny_bert, max_epochs=2, batch_size=8, lr=1e-3, random_state=0, freeze="depth"
    ).fit(X, y)
    comp = Compressed(base, prune=0.5, recover_epochs=1, prefit=True).fit(X, y)
    again = skft.load(comp.save(tmp_path / "small.skft"))  # re-pruned to the saved shapes
    np.testing.assert_allclose(again.predict_proba(X), comp.predict_proba(X), atol=1e-6)
    heads = [m.num_attention_heads for m in again.estimator_.module_.modules()
             if hasattr(m, "attention_head_size")]  # fmt: skip
    assert heads == [1, 1]
