"""Faster forms of exported graphs, each checked to give the same outputs.

Image graphs: the shape arithmetic that a static input size makes constant is folded.

TorchScript export records how a model computes values from its input's size:
TF "same" padding (timm's ``Conv2dSame``, EfficientNet-Lite) computes its pads
from ``x.size()`` in front of every strided convolution. With the image size
fixed, those pads are constants, but the exported graph recomputes them at every
call (about 20 small nodes per convolution), pads in a separate ``Pad`` node, and,
once quantized, dequantizes whole activations only to read their shape. Folding
them lets ONNX Runtime fuse each pad into its convolution. Measured on
EfficientNet-Lite0 at 224 px, 1 thread, batch 1 (``benchmarks/fold_shapes.py``):
fp32 13.7 -> 11.2 ms, static int8 6.7 -> 5.4 ms, outputs unchanged. Text graphs
(a dynamic length axis) are not folded: little of them is static.

The folding is done by ``onnxscript``'s optimizer (constant folding, pad-into-conv
fusion), fed with full ONNX shape inference between its rounds, so that a pad
folded in one round gives the next convolution a static input shape.

Transformer encoders get ONNX Runtime's own graph fusions instead
(:func:`fused_transformer`, before dynamic int8 quantization): attention,
LayerNorm with its residual addition, GELU with its bias. Every rewrite here is
checked against the graph it came from on an example batch, and dropped with a
warning if the outputs differ (:func:`checked`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable

import numpy as np

from ..warn import warn_at_caller

__all__ = ["checked", "fused_transformer", "fuse_transformer", "simplified", "simplify_onnx"]

#: fold ConstantOfShape (left alone by onnxscript by default) up to this many elements
_SMALL = 1024


def simplify_onnx(model: bytes, rounds: int = 20) -> bytes:
    """``model`` with its static shape arithmetic folded (same outputs, fewer nodes)."""
    import onnx
    from onnxscript import ir
    from onnxscript.optimizer import optimize_ir

    proto = onnx.load_from_string(model)
    _shape_reads_as_shape_slices(proto.graph)
    count = len(proto.graph.node)
    for _ in range(rounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
            graph = ir.serde.deserialize_model(proto)
            optimize_ir(graph, should_fold=_fold_small_constant_of_shape)
            proto = ir.serde.serialize_model(graph)
        if len(proto.graph.node) == count:
            break
        count = len(proto.graph.node)
    del proto.graph.value_info[:]  # shapes inferred on the way; the runtime infers its own
    return proto.SerializeToString()


def _shape_reads_as_shape_slices(graph) -> None:
    """Rewrite the exporter's reads of single dimensions as ``Shape`` slices.

    ``Gather(Shape(t), i)`` with a constant scalar ``i`` (``x.size(2)``) becomes
    ``Squeeze(Shape(t, start=i, end=i+1))``, and ``Slice(Shape(t), a, b)`` over axis 0
    with step 1 (``x.size(-1)``, ``x.size()[-2:]``) becomes ``Shape(t, start=a, end=b)``.
    onnxscript folds a ``Shape`` slice whose dimensions are static, but neither form
    above.
    """
    from onnx import helper, numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    shape_of = {n.output[0]: n.input[0] for n in graph.node
                if n.op_type == "Shape" and not n.attribute}  # fmt: skip
    nodes = []
    for node in graph.node:
        reads_shape = bool(node.input) and node.input[0] in shape_of
        bounds = _dimension_bounds(node, constants) if reads_shape else None
        if bounds is None:
            nodes.append(node)
            continue
        read = {"start": bounds[0]} if bounds[1] is None else dict(zip(("start", "end"), bounds))
        source, out = shape_of[node.input[0]], node.output[0]
        if node.op_type == "Slice":
            nodes.append(helper.make_node("Shape", [source], [out], name=node.name, **read))
            continue
        zero = numpy_helper.from_array(np.zeros(1, np.int64))
        nodes += [
            helper.make_node("Shape", [source], [out + "_dim"], **read),
            helper.make_node("Constant", [], [out + "_axes"], value=zero),
            helper.make_node("Squeeze", [out + "_dim", out + "_axes"], [out], name=node.name),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def _dimension_bounds(node, constants: dict) -> tuple[int, int | None] | None:
    """(start, end or None for "to the last") of the dimensions a Gather/Slice of a shape reads."""

    def scalar(name: str, default: int | None = None) -> int | None:
        if not name:
            return default
        found = constants.get(name)
        return int(found.reshape(-1)[0]) if found is not None and found.size == 1 else None

    inputs = list(node.input[1:]) + [""] * 4
    if node.op_type == "Gather":
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        index = constants.get(inputs[0])
        if axis != 0 or index is None or index.ndim != 0:
            return None
        return int(index), (int(index) + 1 if int(index) != -1 else None)
    if node.op_type == "Slice" and scalar(inputs[2], 0) == 0 and scalar(inputs[3], 1) == 1:
        first, last = scalar(inputs[0]), scalar(inputs[1])
        if first is not None and last is not None:
            return first, (None if last >= 2**31 else last)
    return None


def _fold_small_constant_of_shape(node) -> bool | None:
    if node.op_type != "ConstantOfShape" or node.inputs[0] is None:
        return None
    shape = node.inputs[0].const_value
    return True if shape is not None and int(np.prod(shape.numpy())) <= _SMALL else None


def simplified(model: bytes, example: np.ndarray) -> bytes:
    """:func:`simplify_onnx` of ``model`` if its outputs on ``example`` match ``model``'s.

    Otherwise (or if the optimizer fails) ``model`` itself, with a warning that says why:
    a slower graph rather than a wrong one.
    """
    return checked(simplify_onnx, model, example, "ONNX shape folding", "exported unfolded")


def fuse_transformer(model: bytes, model_type: str, num_heads: int, hidden_size: int) -> bytes:
    """``model`` through ONNX Runtime's transformer optimizer (its Python fusions only).

    ``model_type`` as ``onnxruntime.transformers.optimizer.optimize_model`` takes it
    (``"bert"`` for BERT-like encoders); ``num_heads`` and ``hidden_size`` are the
    attention's head count and width (all heads together; after head pruning, what
    is left), or 0 to let the optimizer read them from the graph. The result uses
    ONNX Runtime's contrib operators (``com.microsoft``: Attention,
    SkipLayerNormalization, BiasGelu), so it is for ONNX Runtime only.
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            onnx.load_from_string(model),
            model_type=model_type,
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,  # the fusions only; the session applies its own optimizations
        )
    return optimized.model.SerializeToString()


def fused_transformer(model: bytes, example: np.ndarray, **hints) -> bytes:
    """:func:`fuse_transformer` of ``model`` with ``hints``, if the outputs stay the same."""
    return checked(
        lambda m: fuse_transformer(m, **hints), model, example,
        "ONNX Runtime's transformer fusion", "quantized unfused",
    )  # fmt: skip


def checked(
    rewrite: Callable[[bytes], bytes], model: bytes, example: np.ndarray, what: str, kept: str
) -> bytes:
    """``rewrite(model)`` if its outputs on ``example`` match ``model``'s, else ``model``.

    A rewrite that raises or changes the outputs gives a warning that names ``what``
    failed and says the graph is ``kept`` as it was: a slower graph, never a wrong one.
    """
    try:
        new = rewrite(model)
        want, got = (_outputs(m, example) for m in (model, new))
    except Exception as exc:  # noqa: BLE001  (the optimizers' own errors vary)
        warn_at_caller(f"{what} failed, the graph is {kept}: {exc}")
        return model
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        warn_at_caller(
            f"{what} changed the outputs (max difference {diff:.3g}); the graph is {kept}"
        )
        return model
    return new


@contextlib.contextmanager
def _quiet():
    """Logging below errors off (ONNX Runtime's optimizer logs what it did not fuse, on
    loggers named after its modules: ``fusion_attention``, ``onnx_model``, ...)."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def _outputs(model: bytes, example: np.ndarray) -> np.ndarray:
    from .onnx_runtime import OnnxModel

    return OnnxModel(model, threads=1).run(example)
