"""Text models through skft.Compressed and to_onnx: export, dynamic int8, pruning."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skft import Compressed, FineTunedClassifier
from skft.data import adapt_input
from skft.onnx_export import OnnxModel


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


def test_dynamic_int8_text_model_agrees_and_pickles(fitted, texts):
    X, y = texts
    comp = Compressed(fitted, quantize="dynamic", prefit=True).fit(X, y)
    assert np.mean(comp.predict(X) == fitted.predict(X)) >= 0.9
    assert comp.compression_report_["calibration_agreement"] >= 0.9
    back = pickle.loads(pickle.dumps(comp))
    np.testing.assert_allclose(back.predict_proba(X), comp.predict_proba(X), atol=1e-6)
