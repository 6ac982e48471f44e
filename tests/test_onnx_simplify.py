"""skft.deploy.onnx_simplify: static shape arithmetic folded out of graphs, outputs kept."""

import io
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skft.deploy import onnx_simplify
from skft.deploy.onnx_export import OnnxModel
from skft.deploy.onnx_simplify import simplified, simplify_onnx


def _same(size, kernel: int, stride: int):
    if isinstance(size, torch.Tensor):
        return torch.clamp(((size / stride).ceil() - 1) * stride + kernel - size, min=0).long()
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


class SamePadConv(nn.Conv2d):
    """TF "same" padding computed from the input's size at every call, as timm's Conv2dSame."""

    def forward(self, x):
        ih, iw = x.size()[-2:]  # traced: 0-d tensors, as timm's pad_same sees them
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph, pw = (_same(size, k, s) for size, k, s in ((ih, kh, sh), (iw, kw, sw)))
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, groups=self.groups)


def exported(module: nn.Module, size: int = 15) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(2, 3, size, size),), buffer, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=17, dynamo=False)  # fmt: skip
    return buffer.getvalue()


def ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


@pytest.fixture
def same_pad_net():
    torch.manual_seed(0)
    return nn.Sequential(
        SamePadConv(3, 8, 3, stride=2), nn.ReLU6(), SamePadConv(8, 8, 3, stride=2, groups=8),
        nn.ReLU6(), SamePadConv(8, 4, 5, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


def test_same_padding_folds_into_the_convolutions(same_pad_net):
    raw = exported(same_pad_net)
    assert {"Shape", "Pad", "Gather"} <= set(ops(raw))  # what the exporter writes
    folded = simplify_onnx(raw)
    assert set(ops(folded)) <= {"Conv", "Clip", "Relu", "GlobalAveragePool", "Flatten", "Reshape"}
    assert ops(folded).count("Conv") == 3
    for batch in (1, 5):  # the batch axis stays dynamic
        x = torch.rand(batch, 3, 15, 15)
        with torch.no_grad():
            want = same_pad_net(x).numpy()
        np.testing.assert_allclose(OnnxModel(folded).run(x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_simplified_keeps_the_graph_when_folding_changes_outputs(same_pad_net, monkeypatch):
    raw = exported(same_pad_net)
    other = exported(nn.Sequential(*list(same_pad_net)[:-2], nn.AdaptiveMaxPool2d(1), nn.Flatten()))
    monkeypatch.setattr(onnx_simplify, "simplify_onnx", lambda model: other)
    with pytest.warns(UserWarning, match="changed the outputs"):
        assert simplified(raw, np.random.rand(2, 3, 15, 15).astype(np.float32)) == raw


def test_simplified_keeps_the_graph_when_folding_fails(same_pad_net, monkeypatch):
    raw = exported(same_pad_net)

    def broken(model):
        raise RuntimeError("optimizer bug")

    monkeypatch.setattr(onnx_simplify, "simplify_onnx", broken)
    with pytest.warns(UserWarning, match="optimizer bug"):
        assert simplified(raw, np.random.rand(2, 3, 15, 15).astype(np.float32)) == raw


def test_negative_and_last_dimension_gathers_fold():
    class LastDims(nn.Module):
        def forward(self, x):  # x.size(-1), x.size(-2): negative scalar gathers
            return x * (x.size(-1) + 2 * x.size(-2))

    raw = exported(LastDims(), size=6)
    folded = simplify_onnx(raw)
    assert "Shape" not in ops(folded)
    x = np.random.rand(3, 3, 6, 6).astype(np.float32)
    np.testing.assert_allclose(OnnxModel(folded).run(x), x * 18, rtol=1e-6)


def test_transformer_fusion_is_dropped_when_it_changes_outputs(same_pad_net, monkeypatch):
    raw = exported(same_pad_net)
    other = exported(nn.Sequential(*list(same_pad_net)[:-2], nn.AdaptiveMaxPool2d(1), nn.Flatten()))
    seen = {}

    def fake(model, **hints):
        seen.update(hints)
        return other

    monkeypatch.setattr(onnx_simplify, "fuse_transformer", fake)
    x = np.random.rand(2, 3, 15, 15).astype(np.float32)
    hints = {"model_type": "bert", "num_heads": 2, "hidden_size": 8}
    with pytest.warns(UserWarning, match="transformer fusion changed the outputs"):
        assert onnx_simplify.fused_transformer(raw, x, **hints) == raw
    assert seen == hints
    monkeypatch.setattr(onnx_simplify, "fuse_transformer", lambda model, **hints: raw + b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same outputs: taken, no warning
        assert onnx_simplify.fused_transformer(raw, x, **hints) == raw


class _Hinted(nn.Module):
    def __init__(self, hints):
        super().__init__()
        self.hints = hints

    def onnx_fusion_hints(self):
        return self.hints


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ([], None),
        ([None], None),
        ([("bert", 4, 64)] * 2, ("bert", 4, 64)),
        ([("bert", 4, 64), ("bert", 3, 48)], ("bert", 0, 0)),  # uneven heads: auto-detect
        ([("bert", 4, 64), ("gpt2", 4, 64)], None),
    ],
)
def test_fusion_hints_agree_or_fall_back(layers, expected):
    from skft.deploy.onnx_export import fusion_hints
    from skft.specs import OnnxFusable, OnnxFusionHints

    keys = ("model_type", "num_heads", "hidden_size")
    parts = [_Hinted(None if h is None else OnnxFusionHints(*h)) for h in layers]
    assert all(isinstance(p, OnnxFusable) for p in parts)
    want = None if expected is None else dict(zip(keys, expected))
    assert fusion_hints(nn.Sequential(nn.Linear(2, 2), *parts)) == want
