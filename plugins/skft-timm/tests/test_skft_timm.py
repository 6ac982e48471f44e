"""Tests of the skft-timm plugin (CPU, offline)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from importlib.metadata import entry_points

import pytest
import skft
import timm
import torch
from timm_helpers import apply, n_params
from torch import nn

import skft_timm
from skft_timm import _build

# --------------------------------------------------------------------------
# import and discovery
# --------------------------------------------------------------------------


def test_import_imports_neither_timm_nor_torch():
    code = (
        "import sys, skft_timm\n"
        "spec = skft_timm.efficientnet_lite0_spec()\n"
        "found = []\n"
        "skft_timm.register_backbone_prefixes(lambda p, r, description='': found.append(p))\n"
        "assert found == ['timm:'], found\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('timm', 'torch')]\n"
        "assert not bad, bad[:5]\n"
        "print(spec.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "efficientnet_lite0"


def test_found_through_entry_point():
    eps = {ep.name: ep.value for ep in entry_points(group="skft")}
    assert eps.get("timm") == "skft_timm"
    spec = skft.get_backbone("efficientnet_lite0")
    assert spec.name == "efficientnet_lite0"
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    assert spec.default_image_size == 224
    assert "efficientnet_lite0" in skft.backbones()
    assert skft.get_backbone("timm:resnet10t").name == "timm:resnet10t"


def test_other_names_are_not_resolved():
    assert skft.get_backbone("resnet18").extra["source"] == "torchvision"
    for name in ("resnet18", "efficientnet_lite0"):
        with pytest.raises(ValueError, match="not a timm backbone name"):
            skft_timm.resolve_backbone(name)


# --------------------------------------------------------------------------
# any timm model
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, groups, neck_is_pool",
    [
        ("resnet10t", ["conv1+bn1", "layer1", "layer2", "layer3", "layer4"], True),
        # MobileNetV3's head has a conv: it becomes the last group, the neck is Identity
        (
            "mobilenetv3_small_050",
            ["conv_stem+bn1", *(f"blocks.{i}" for i in range(6)), "conv_head"],
            False,
        ),
    ],
)
def test_timm_name_builds_and_matches_forward(name, groups, neck_is_pool):
    spec = skft.get_backbone(f"timm:{name}")
    assert spec.mean == tuple(timm.models.get_pretrained_cfg(name).mean)
    torch.manual_seed(0)
    parts = spec.build(False, (3, 64, 64))
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0).eval()
    assert [n for n, _ in parts.groups] == groups
    assert isinstance(parts.neck, _build.TimmHead) == neck_is_pool
    assert n_params([parts.neck]) == 0
    assert n_params(g for _, g in parts.groups) == n_params([model])
    first = next(m for m in parts.groups[0][1].modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(first.weight, model.state_dict()[next(iter(model.state_dict()))])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = apply(parts, x), model(x)
    assert ours.shape == (2, parts.feature_dim) == theirs.shape
    torch.testing.assert_close(ours, theirs)


def test_timm_pretrained_path(tmp_path):
    torch.manual_seed(3)
    donor = timm.create_model("resnet10t", pretrained=False)  # with its 1000-class fc
    torch.save(donor.state_dict(), tmp_path / "resnet10t.pth")
    parts = skft.get_backbone("timm:resnet10t").build(tmp_path / "resnet10t.pth", (3, 64, 64))
    ours = [t for _, g in parts.groups for t in g.state_dict().values()]
    theirs = [v for k, v in donor.state_dict().items() if not k.startswith("fc.")]
    assert len(ours) == len(theirs) and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="does not match"):
        skft.get_backbone("timm:resnet10t").build(tmp_path / "resnet18.pth", (3, 64, 64))


def test_unknown_timm_name_suggests_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'timm:resnet"):
        skft.get_backbone("timm:resnet9999")
    with pytest.raises(ValueError, match="resnet10t.c3_in1k"):
        skft.get_backbone("timm:resnet10t.nosuchtag")


def test_offline_download_gives_clear_error(monkeypatch):
    real = timm.create_model

    def create_model(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    spec = skft.get_backbone("timm:resnet10t")
    with pytest.raises(RuntimeError, match=r"pretrained='/path/to/resnet10t.pth'"):
        spec.build(True, (3, 64, 64))


def test_model_without_module_chain_is_one_group():
    spec = skft.get_backbone("timm:vit_tiny_patch16_224")
    assert spec.default_image_size == 224 and spec.mean == (0.5, 0.5, 0.5)
    _build._PLANS.pop("vit_tiny_patch16_224", None)
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parts = spec.build(False, (3, 224, 224))
    assert any("one group" in str(w.message) for w in caught)
    assert [n for n, _ in parts.groups] == ["model"] and parts.feature_dim == 192
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(apply(parts, x), model(x))


# --------------------------------------------------------------------------
# local checkpoint formats (timm's loader)
# --------------------------------------------------------------------------


def test_timm_checkpoint_formats(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(4)
    donor = timm.create_model("resnet10t", pretrained=False)
    state = donor.state_dict()
    # a training checkpoint of a DDP-wrapped model, and a safetensors file
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(wrapped, tmp_path / "checkpoint.pth.tar")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    expected = [v for k, v in state.items() if not k.startswith("fc.")]
    spec = skft.get_backbone("timm:resnet10t")
    for file in ("checkpoint.pth.tar", "model.safetensors"):
        parts = spec.build(tmp_path / file, (3, 64, 64))
        ours = [t for _, g in parts.groups for t in g.state_dict().values()]
        assert len(ours) == len(expected)
        assert all(torch.equal(a, b) for a, b in zip(ours, expected)), file
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="not a loadable state dict"):
        spec.build(tmp_path / "tensor.pth", (3, 64, 64))


# --------------------------------------------------------------------------
# grayscale through timm's in_chans
# --------------------------------------------------------------------------


@pytest.fixture
def resnet10t_file(tmp_path):
    torch.manual_seed(5)
    file = tmp_path / "resnet10t.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), file)
    return file


@pytest.mark.parametrize("name", ["efficientnet_lite0", "timm:resnet10t"])
def test_grayscale_model_has_in_chans_1_and_sees_gray_as_rgb(name, resnet10t_file):
    from skft.io.weights import adapt_input_channels

    pretrained = True if name == "efficientnet_lite0" else resnet10t_file
    spec = skft.get_backbone(name)
    rgb = spec.build(pretrained, (3, 32, 32))
    gray = spec.build(pretrained, (1, 32, 32))
    assert [n for n, _ in gray.groups] == [n for n, _ in rgb.groups]
    assert gray.model.in_chans == 1
    conv_rgb, conv_gray = (
        next(m for m in p.groups[0][1].modules() if isinstance(m, nn.Conv2d)) for p in (rgb, gray)
    )
    assert conv_gray.in_channels == 1 and conv_rgb.in_channels == 3
    torch.testing.assert_close(conv_gray.weight, conv_rgb.weight.sum(dim=1, keepdim=True))
    weight = conv_gray.weight
    adapt_input_channels([g for _, g in gray.groups], 1)  # what skft core does next: a no-op
    assert conv_gray.weight is weight
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ours, reference = apply(gray, x), apply(rgb, x.repeat(1, 3, 1, 1))
    assert ours.shape == (2, gray.feature_dim)
    assert ours.abs().max() > 0.1
    torch.testing.assert_close(ours, reference)


# --------------------------------------------------------------------------
# BackboneParts.model: the tuned network under timm's names
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, pretrained, arch",
    [
        ("efficientnet_lite0", True, skft_timm.LITE0_TIMM_ARCH),
        ("timm:resnet10t", False, "resnet10t"),
        ("timm:mobilenetv3_small_050", False, "mobilenetv3_small_050"),  # head in the groups
    ],
)
def test_parts_model_is_the_timm_model_of_the_groups(name, pretrained, arch):
    spec = skft.get_backbone(name)
    torch.manual_seed(0)
    parts = spec.build(pretrained, (3, 64, 64))
    if spec.n_groups is not None:
        assert spec.n_groups == len(parts.groups)
    model = parts.model
    assert isinstance(model, nn.Module)
    # the groups share the model's parameters: training them trains the model
    group_params = {id(p) for _, g in parts.groups for p in g.parameters()}
    assert group_params == {id(p) for p in model.parameters()}
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for p in parts.groups[-1][1].parameters():
            p.add_(0.01)  # a change made through the groups shows in the model
        features = apply(parts, x)
        model.eval()
        torch.testing.assert_close(model(x), features)
    assert features.shape == (2, parts.feature_dim)
    # timm's own names: a fresh timm model loads the state dict strictly
    fresh = timm.create_model(arch, pretrained=False, num_classes=0)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), features)


# --------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("skft.estimators") is None, reason="skft without estimators"
)
def test_fine_tuned_classifier_with_efficientnet_lite0(offline):
    from skft.data.datasets import load_digits_images

    X, y = load_digits_images()
    X, y = X[:20], y[:20]
    clf = skft.FineTunedClassifier(
        backbone="efficientnet_lite0",
        pretrained=True,
        image_size=32,
        max_epochs=1,
        augment="none",
        random_state=0,
        verbose=0,
    )
    clf.fit(X, y)
    pred = clf.predict(X)
    assert pred.shape == (20,)
    assert set(pred) <= set(y)


@pytest.mark.skipif(
    importlib.util.find_spec("skft.deploy.onnx_export") is None, reason="skft without ONNX export"
)
def test_lite0_exports_with_its_same_padding_folded(offline, tmp_path):
    import numpy as np
    import onnx
    from skft.data.adapters import adapt_input, as_float_images
    from skft.data.datasets import load_digits_images
    from skft.deploy.onnx_export import OnnxModel

    X, y = load_digits_images()
    clf = skft.FineTunedClassifier(
        backbone="efficientnet_lite0", image_size=48, max_epochs=1, augment="none", random_state=0
    ).fit(X[:20], y[:20])
    model = clf.to_onnx(tmp_path / "lite0.onnx").read_bytes()
    ops = {node.op_type for node in onnx.load_from_string(model).graph.node}
    assert not ops & {"Shape", "Pad", "Gather", "Ceil"}  # TF "same" pads folded into the convs
    x = as_float_images(adapt_input(clf, X[:3], fitting=False))
    with torch.no_grad():
        want = clf.module_.eval()(x).numpy()
    np.testing.assert_allclose(OnnxModel(model).run(x.numpy()), want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec("skft.estimators") is None, reason="skft without estimators"
)
def test_a_saved_model_loads_in_a_fresh_process(tmp_path):
    """skft.load builds on the meta device first: the cut into groups must not be made there."""
    import os

    import numpy as np
    from skft.data.datasets import load_digits_images

    X, y = load_digits_images(n_class=3)
    clf = skft.FineTunedClassifier(
        "timm:resnet10t", pretrained=False, image_size=32, max_epochs=1, random_state=0, verbose=0
    ).fit(X[:24], y[:24])
    np.save(tmp_path / "x.npy", X[:6])
    folder, x = str(clf.save(tmp_path / "m.skft")), str(tmp_path / "x.npy")
    code = (
        "import sys, numpy as np, skft\n"
        f"model = skft.load({folder!r})\n"
        f"print(len(model.module_.groups), model.predict(np.load({x!r})).tolist())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{len(clf.module_.groups)} {clf.predict(X[:6]).tolist()}"
