"""ONNX export of a tuned network, int8 quantization, and an ONNX Runtime model that pickles."""

from __future__ import annotations

import copy
import functools
import io
import os
import re
import tempfile
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..network import FineTuneModule, merge_adapters
from ..specs import OnnxExportable, OnnxFusable
from .onnx_runtime import OnnxModel
from .onnx_simplify import fused_transformer, simplified

__all__ = [
    "InferenceGraph",
    "OnnxModel",
    "estimator_onnx",
    "export_onnx",
    "fusion_hints",
    "output_name",
    "quantize_onnx",
    "to_onnx",
]

#: ``quantize`` values: static per-channel QDQ with calibration, or dynamic (weights only).
QUANTIZE_MODES = ("int8", "int8-signed", "dynamic")
#: the static modes (calibrated)
STATIC_MODES = ("int8", "int8-signed")
_OPSET = 17


class InferenceGraph(nn.Module):
    """``head(neck(groups(preprocess(x))))``: :class:`FineTuneModule` without freezing or caching.

    Shares the module's layers, so pruning it prunes the estimator's module.
    """

    def __init__(self, module: FineTuneModule) -> None:
        super().__init__()
        self.preprocess, self.groups = module.preprocess, module.groups
        self.neck, self.head = module.neck, module.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        for group in self.groups:
            x = group(x)
        return self.head(self.neck(x))


def export_onnx(
    module: FineTuneModule,
    input_shape: tuple[int, ...],
    backbone: str,
    variable_length: bool = False,
) -> bytes:
    """The module as an fp32 ONNX model: input ``x`` float32 ``(N, *input_shape)``, output ``y``.

    Images enter as floats in [0, 1]; the backbone's normalisation is part of
    the graph. ``variable_length`` (text): ``x`` holds token batches ``(N, C, L)``
    (ids, attention mask, ... as float32), and ``L`` is a dynamic axis too.
    Uses torch's TorchScript-based exporter (opset 17): it exports
    smallcnn and EfficientNet-Lite0 (TF "same" padding) in a fraction of the
    time of the dynamo exporter, with the same outputs. Operations it cannot
    export raise a ``ValueError`` naming the backbone and the operation.
    The module is deep-copied first and its adapters (``freeze="lora"``, ...) merged
    into their layers (:func:`skft.network.merge_adapters`); any layer of the copy that defines
    ``prepare_onnx_export()`` is called, so that a plugin's layer can switch its copy
    to a form that exports better (skft-transformers: eager attention instead of
    PyTorch's fused ``scaled_dot_product_attention``). For images, the shape
    arithmetic that the static image size makes constant (TF "same" pads) is folded
    and the pads are fused into their convolutions
    (:func:`skft.deploy.onnx_simplify.simplified`, checked to give the same outputs).
    """
    graph = InferenceGraph(copy.deepcopy(module).cpu()).eval()
    merge_adapters(graph)  # LoRA & co. folded into their layers: a plain network
    for part in graph.modules():  # a layer may switch its copy to an export-friendlier form
        if isinstance(part, OnnxExportable):
            part.prepare_onnx_export()
    axes = {0: "batch", len(input_shape): "length"} if variable_length else {0: "batch"}
    if variable_length:  # token ids 1, the second text padded: the mask path is traced
        example = torch.zeros((2, *input_shape))
        example[:, 0], example[:, 1] = 1.0, 1.0
        example[1, 1, input_shape[-1] // 2 :] = 0.0
    else:
        example = torch.rand((2, *input_shape))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(
                graph,
                (example,),
                buffer,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": axes, "y": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as exc:
        found = re.search(r"operator '([\w:.]+)'", str(exc))
        op = f"operation {found.group(1)!r}" if found else "an operation"
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"backbone {backbone!r} cannot be exported to ONNX: {op} is not supported "
            f"by the exporter ({first_line})"
        ) from exc
    if variable_length:  # little is static (MiniLM: same latency folded, 5x the export time)
        return buffer.getvalue()
    return simplified(buffer.getvalue(), example.numpy())


def estimator_onnx(estimator: Any) -> bytes:
    """A fitted estimator's network as fp32 ONNX bytes (see :func:`to_onnx` for the input)."""
    return export_onnx(
        estimator.module_,
        estimator.input_shape_,
        str(estimator.backbone),
        estimator.input_kind_.variable_length,
    )


def to_onnx(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted estimator's network to ``path`` as fp32 ONNX; returns the path.

    The model takes float32 images ``(N, C, S, S)`` in [0, 1] (``input_shape_``;
    uint8 pixels divided by 255), or for text the tokenised batch ``(N, C, L)``
    as float32 (``L`` any length) and gives the network's raw outputs: logits
    for a classifier, standardised targets for a regressor.
    """
    estimator.check_is_fitted()
    data = estimator_onnx(estimator)
    path = Path(path)
    path.write_bytes(data)
    return path


def output_name(est: Any) -> str | None:
    """``"softmax"``, ``"sigmoid"`` (multi-label) or ``"identity"``: the estimator's predict
    nonlinearity; None: another."""
    from skorch.utils import _identity

    nonlinearity = est._get_predict_nonlinearity()
    if nonlinearity is _identity:
        return "identity"
    if nonlinearity is torch.sigmoid:
        return "sigmoid"
    if isinstance(nonlinearity, functools.partial) and nonlinearity.func is torch.softmax:
        if not nonlinearity.args and nonlinearity.keywords == {"dim": -1}:
            return "softmax"
    return None


def fusion_hints(module: nn.Module) -> dict[str, Any] | None:
    """What ONNX Runtime's transformer optimizer needs to know about ``module``, or None.

    Any layer may define ``onnx_fusion_hints()`` (:class:`skft.specs.OnnxFusable`),
    returning :class:`skft.specs.OnnxFusionHints` for
    :func:`skft.deploy.onnx_simplify.fused_transformer` (skft-transformers' encoder layers
    do); the answer is the hints as a dict (the compression report keeps it). Layers
    that disagree on the head count (pruned unevenly) leave it to the optimizer (0),
    which then fuses what it can without attention; layers of different model types
    give None.
    """
    found = [part.onnx_fusion_hints() for part in module.modules()
             if isinstance(part, OnnxFusable)]  # fmt: skip
    found = [asdict(hint) if is_dataclass(hint) else hint for hint in found if hint]
    if not found or len({hint["model_type"] for hint in found}) > 1:
        return None
    if len({(hint["num_heads"], hint["hidden_size"]) for hint in found}) > 1:
        return {"model_type": found[0]["model_type"], "num_heads": 0, "hidden_size": 0}
    return dict(found[0])


def quantize_onnx(
    model: bytes,
    mode: str,
    calibration: np.ndarray | None = None,
    keep_fp32: int = 2,
    fusion: dict[str, Any] | None = None,
    example: np.ndarray | None = None,
) -> bytes:
    """int8 ``model``: static per-channel QDQ calibrated on ``calibration``; or dynamic.

    ``"int8"``: unsigned asymmetric 8-bit activations (U8S8, ONNX Runtime's
    fast path on x86) and signed symmetric per-channel weights, min-max
    calibration, every operator ONNX Runtime can quantize (convolutions, linear
    layers, additions, pooling...), so that consecutive quantized operators fuse
    and the tensors between them stay in 8 bits. ``"int8-signed"``: the same
    with signed symmetric activations (S8S8, ONNX Runtime's default format;
    about 2.5x slower than "int8" on the x86 CPUs measured here, for runtimes
    whose S8S8 kernels are fast). The first ``keep_fp32`` convolution/linear
    layers, and every node before them (normalisation, padding), stay in
    float32, and so does any arithmetic left that computes shapes and paddings
    from the input's size (image exports fold it away: :mod:`skft.deploy.onnx_simplify`).
    Measured on EfficientNet-Lite0 (``bench_compress.py``'s digits model, fp32
    0.796 on 500 test images, 1 thread, traced graphs): "int8" 0.814 and 2.1x
    faster than fp32 at batch 1 (2.3x with the folded graphs); "int8-signed" 0.826
    and 0.7x; the earlier
    unsigned mode that quantized only convolutions and linear layers 0.772 and
    2.0x (the float additions between them cost accuracy and time). The layers
    nearest the input amplify quantization noise most: the first two stay in
    float32 by default.

    ``"dynamic"`` with ``fusion`` (:func:`fusion_hints`) and an ``example`` batch:
    the float graph first goes through ONNX Runtime's transformer fusions
    (:func:`skft.deploy.onnx_simplify.fused_transformer`; kept only if its outputs on
    ``example`` are unchanged), so that attention quantizes as one ``QAttention``
    operator. Measured on MiniLM (``bench_compress.py``, 1 thread, batch 1): the
    first held-out message 2.39 -> 1.82 ms; 32 messages one at a time (median)
    3.49 -> 3.27 ms; batch 32 within noise.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize={mode!r}: use one of {[None, *QUANTIZE_MODES]}")
    if mode == "dynamic" and fusion is not None and example is not None:
        model = fused_transformer(model, example, **fusion)  # warns (and skips) on a change
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (os.path.join(tmp, f"{n}.onnx") for n in ("src", "pre", "out"))
        Path(src).write_bytes(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # auto_merge: text models slice position ids to Min(max_positions, length),
            # which symbolic shape inference can only reconcile with length by merging
            quant_pre_process(src, pre, auto_merge=True)
            if mode == "dynamic":
                quantize_dynamic(pre, out, weight_type=QuantType.QInt8, per_channel=True)
            else:
                reader = _calibration_reader(check_calibration(calibration, _input_shape(model)))
                signed = mode == "int8-signed"
                quantize_static(
                    pre,
                    out,
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QInt8 if signed else QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=float_nodes(Path(pre).read_bytes(), keep_fp32),
                    extra_options={"ActivationSymmetric": signed, "WeightSymmetric": True},
                )
        return Path(out).read_bytes()


_WEIGHTED = ("Conv", "Gemm", "MatMul")


def float_nodes(model: bytes, keep_fp32: int) -> list[str]:
    """Names of the nodes static quantization leaves in float32.

    Every node up to and including the ``keep_fp32``-th Conv/Gemm/MatMul (in
    topological order), and the shape arithmetic: nodes whose inputs all come
    from ``Shape`` nodes, constants or other such nodes (TF "same" padding
    computes its pads from the input's size in float; quantized, those sizes
    would be rounded).
    """
    import onnx

    graph = onnx.load_from_string(model).graph
    constant = {i.name for i in graph.initializer}
    shape_derived: set[str] = set()
    names, seen = [], 0
    for node in graph.node:
        inputs = [i for i in node.input if i and i not in constant]
        if node.op_type == "Constant":
            constant.update(node.output)
        elif node.op_type == "Shape" or (inputs and all(i in shape_derived for i in inputs)):
            shape_derived.update(node.output)
            names.append(node.name)
        elif seen < keep_fp32:
            names.append(node.name)
            seen += node.op_type in _WEIGHTED
    return names


def _input_shape(model: bytes) -> tuple[int | None, ...]:
    import onnx

    dims = onnx.load_from_string(model).graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def check_calibration(X: Any, input_shape: tuple[int | None, ...]) -> np.ndarray:
    """``X`` as float32 if it fits the model's input ``(N, *input_shape[1:])``; else ValueError."""
    want = "(N, " + ", ".join(str(d) for d in input_shape[1:]) + ")"
    shape = None if X is None else np.shape(X)
    if shape is None or len(shape) != len(input_shape) or shape[0] == 0:
        raise ValueError(f"calibration data must have shape {want}; got {shape}")
    if any(d is not None and d != s for d, s in zip(input_shape[1:], shape[1:])):
        raise ValueError(f"calibration data must have shape {want}; got {shape}")
    return np.ascontiguousarray(X, dtype=np.float32)


def _calibration_reader(X: np.ndarray):
    """``X`` in chunks of 32, as ONNX Runtime's ``quantize_static`` reads calibration data."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.chunks = iter([{"x": X[i : i + 32]} for i in range(0, len(X), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.chunks, None)

    return Reader()
