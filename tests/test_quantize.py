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
import pytest
import torch
from torch import nn

from skft import Compressed, FineTunedClassifier
from skft.data.adapters import adapt_input


@pytest.fixture(scope="module")
def fitted(digits, fast_settings):
    """A smallcnn classifier fitted once (3 epochs) for the tests that compress it prefit."""
    X, y = digits
    return FineTunedClassifier(**{**fast_settings, "max_epochs": 3}).fit(X, y)


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


@pytest.mark.parametrize("keep_fp32", [0, 1])
def test_int8_agrees_with_fp32(digits, fitted, keep_fp32):
    X, y = digits
    fp32 = fitted.predict(X)
    for mode in ("int8", "int8-signed", "dynamic"):
        comp = Compressed(fitted, quantize=mode, prefit=True, random_state=0, keep_fp32=keep_fp32)
        comp.fit(X, y)
        assert np.mean(comp.predict(X) == fp32) >= 0.9, mode
        assert comp.compression_report_["calibration_agreement"] >= 0.9, mode
        assert comp.compression_report_["keep_fp32"] == (keep_fp32 if "int8" in mode else 0)


def test_static_int8_leaves_the_first_layers_and_shape_arithmetic_in_float(digits, fitted):
    import onnx

    from skft.deploy.onnx_export import export_onnx, float_nodes

    X, y = digits
    fp32 = export_onnx(fitted.module_, fitted.input_shape_, "smallcnn")
    nodes = list(onnx.load_from_string(fp32).graph.node)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    assert float_nodes(fp32, 0) == [] and float_nodes(fp32, 3)[-1] == convs[2]
    kept = float_nodes(fp32, 1)
    assert convs[0] in kept and convs[1] not in kept
    first_conv = next(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    assert {n.name for n in nodes[:first_conv]} <= set(kept)  # normalisation, padding
    comp = Compressed(fitted, quantize="int8", keep_fp32=1, prefit=True, random_state=0).fit(X, y)
    graph = onnx.load_from_string(comp.onnx_model_.model).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    first, second = [n for n in graph.node if n.op_type == "Conv"][:2]
    assert producers.get(first.input[1]) != "DequantizeLinear"  # float weights
    assert producers.get(second.input[1]) == "DequantizeLinear"  # int8 weights


def test_int8_activations_unsigned_and_signed(digits, fitted):
    """"int8": uint8 activations on every quantizable operator; "int8-signed": int8 ones."""
    import onnx
    from onnx import TensorProto

    X, y = digits
    kinds = {}
    for mode in ("int8", "int8-signed"):
        comp = Compressed(fitted, quantize=mode, keep_fp32=0, prefit=True, random_state=0)
        graph = onnx.load_from_string(comp.fit(X, y).onnx_model_.model).graph
        inits = {i.name: i for i in graph.initializer}
        producers = {o: n for n in graph.node for o in n.output}
        act = [  # zero points of the activations' QuantizeLinear nodes (not weights)
            inits[n.input[2]].data_type
            for n in graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits
        ]
        kinds[mode] = set(act)
        pooled = [n for n in graph.node if n.op_type in ("GlobalAveragePool", "MaxPool")]
        assert pooled and all(
            producers[n.input[0]].op_type == "DequantizeLinear" for n in pooled
        ), mode  # pooling runs on quantized tensors too
    assert kinds == {"int8": {TensorProto.UINT8}, "int8-signed": {TensorProto.INT8}}


def test_shape_arithmetic_is_not_quantized():
    """A graph that computes a pad from its input's size in float (as TF "same" padding does)."""
    import onnx
    from onnx import TensorProto, helper

    from skft.deploy.onnx_export import float_nodes

    const = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Div", ["sf", "two"], ["half"], name="div"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [const],
    )
    model = helper.make_model(graph).SerializeToString()
    assert float_nodes(model, 0) == ["shape", "cast", "div"]
    onnx.checker.check_model(onnx.load_from_string(model))
