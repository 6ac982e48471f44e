"""int8 through ONNX Runtime, judged by what quantization promises on any processor.

ONNX Runtime picks its integer kernels by processor (AVX-512 VNNI, AVX2, Arm dot
products), and x86 AVX2's u8s8 multiply-add can saturate where VNNI does not. The
fp32 model itself also differs by a few ulps between processors. So these tests never
compare against one machine's int8 output: they compare the int8 model with the fp32
model it came from, with a tolerance derived from the quantization steps, and allow a
few samples (those whose sums a kernel may saturate) to lie outside it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from skft import Compressed, FineTunedClassifier
from skft.data.adapters import adapt_input


def dynamic_int8_error_scale(net, X) -> np.ndarray:
    """Per-sample root-mean-square logit error that dynamic int8 rounding predicts.

    Every ``nn.Linear`` is quantized as ONNX Runtime's dynamic mode does it:
    activations to uint8 over the batch's range (step ``s = range / 255``), weights
    to int8 per output channel (step ``max|W_j| / 127``). Each rounding error is
    uniform within one step (variance ``step**2 / 12``); the variances go through
    the layers (ReLU does not increase them).
    """
    linears = [m for m in net.module_.modules() if isinstance(m, nn.Linear)]
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.append(i[0])) for m in linears]
    try:
        with torch.no_grad():
            net.module_(adapt_input(net, X, fitting=False))
    finally:
        for hook in hooks:
            hook.remove()
    var = torch.zeros_like(inputs[0])
    with torch.no_grad():
        for layer, x in zip(linears, inputs):
            w = layer.weight
            step_x = (x.max().clamp(min=0) - x.min().clamp(max=0)) / 255
            step_w = w.abs().amax(dim=1) / 127
            var_in = var + step_x**2 / 12
            var = var_in @ (w**2).T + step_w**2 / 12 * (x**2 + var_in).sum(1, keepdim=True)
    return var.sqrt().amax(dim=1).numpy()


def centred_logits(proba: np.ndarray) -> np.ndarray:
    """Logits up to the per-sample constant that softmax drops."""
    logits = np.log(np.clip(proba, 1e-12, None))
    return logits - logits.mean(axis=1, keepdims=True)


def test_dynamic_int8_on_a_tabular_mlp(fast):
    """The MatMul/Gemm path that transformer encoders take (``quantize="dynamic"``)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    settings = {**fast, "backbone": "mlp", "image_size": None, "max_epochs": 20, "lr": 1e-2}
    clf = FineTunedClassifier(**settings).fit(X, y)
    comp = Compressed(clf, quantize="dynamic", prefit=True).fit(X, y)
    report = comp.compression_report_
    assert report["onnx_bytes"] < report["fp32_bytes_after"]
    assert report["calibration_agreement"] >= 0.9
    assert np.mean(comp.predict(X) == clf.predict(X)) >= 0.9

    p_int8, p_fp32 = comp.predict_proba(X), clf.predict_proba(X)
    np.testing.assert_allclose(p_int8.sum(axis=1), 1.0, rtol=1e-5)
    error = np.abs(centred_logits(p_int8) - centred_logits(p_fp32)).max(axis=1)
    scale = dynamic_int8_error_scale(clf, X)
    # Typical errors are of the size rounding predicts (about 1x here); a broken
    # quantization (wrong scale, a layer left out or doubled) is off by orders of magnitude.
    assert np.median(error / scale) <= 4.0
    # Most samples stay within 8 predicted standard deviations; a few may not, where
    # an AVX2 kernel saturates a sum.
    assert np.mean(error <= 8 * scale) >= 0.9
    # And no sample's probabilities move far: at most 10% of them by more than 0.1.
    assert np.mean(np.abs(p_int8 - p_fp32).max(axis=1) <= 0.1) >= 0.9
