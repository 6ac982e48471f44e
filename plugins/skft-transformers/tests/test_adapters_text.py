"""Adapters on a text encoder (freeze="lora", "bitfit"): the Linear layers of the encoder
layers get them, small files round-trip, export merges them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skft
import torch
from skft import FineTunedClassifier
from skft.data.adapters import adapt_input
from skft.deploy.onnx_export import OnnxModel

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def lora(tiny_bert, texts):
    X, y = texts
    return FineTunedClassifier(
        "hf:" + tiny_bert, freeze="lora", freeze__r=2, frozen_depth=1, max_epochs=3,
        batch_size=8, lr=5e-3, random_state=0, verbose=0,
    ).fit(X, y)  # fmt: skip


def test_lora_adapts_each_linear_of_the_adapted_layers(lora):
    names = [n for n, p in lora.module_.named_parameters() if p.requires_grad]
    adapted = [n for n in names if not n.startswith("head.")]
    assert adapted and all("lora_" in n for n in adapted)
    assert not any(n.startswith("groups.0.") for n in adapted)  # embeddings: frozen_depth 1
    # tiny BERT: 2 layers x (query, key, value, attention output, intermediate, output)
    assert len({n.rsplit(".lora_", 1)[0] for n in adapted}) == 2 * 6
    hidden, inner = 32, 64
    per_layer = 4 * 2 * (hidden + hidden) + 2 * (hidden + inner) + 2 * (inner + hidden)
    head = sum(p.numel() for p in lora.module_.head.parameters())
    assert sum(p.numel() for n, p in lora.module_.named_parameters() if n in names) == (
        2 * per_layer + head
    )


def test_target_names_attention_projections(tiny_bert, texts):
    X, y = texts
    clf = FineTunedClassifier(
        "hf:" + tiny_bert, freeze="lora", freeze__target="query|value", max_epochs=1,
        batch_size=8, random_state=0, verbose=0,
    ).fit(X, y)  # fmt: skip
    adapted = {
        n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1]
        for n, p in clf.module_.named_parameters()
        if p.requires_grad and "lora_" in n
    }
    assert adapted == {"query", "value"}


def test_text_adapter_file_is_small_and_round_trips(lora, texts, tmp_path):
    X, _ = texts
    small = lora.save(tmp_path / "small.skft")
    full = lora.save(tmp_path / "full.skft", adapter_only=False)
    small_bytes = (small / "weights.safetensors").stat().st_size
    assert small_bytes < (full / "weights.safetensors").stat().st_size / 2
    assert "base" in json.loads((small / "config.json").read_text())
    again = skft.load(small)
    np.testing.assert_allclose(again.predict_proba(X), lora.predict_proba(X), atol=1e-5)


def test_text_onnx_export_of_lora_matches_pytorch(lora, tmp_path):
    import onnx

    path = lora.to_onnx(tmp_path / "lora.onnx")
    assert not any("lora" in i.name for i in onnx.load(str(path)).graph.initializer)
    model = OnnxModel(path.read_bytes())
    x = adapt_input(lora, ["free cash now", "see you at home tonight friend"], fitting=False)
    with torch.no_grad():
        expected = lora.module_.eval()(x).numpy()
    np.testing.assert_allclose(model.run(x.float().numpy()), expected, atol=1e-5, rtol=1e-4)


def test_bitfit_trains_the_encoder_biases(tiny_bert, texts):
    X, y = texts
    clf = FineTunedClassifier(
        "hf:" + tiny_bert, freeze="bitfit", max_epochs=1, batch_size=8, random_state=0, verbose=0
    ).fit(X, y)
    names = [n for n, p in clf.module_.named_parameters() if p.requires_grad]
    assert all(n.endswith("bias") or n.startswith("head.") for n in names)
    assert any(n.startswith("groups.") for n in names)
