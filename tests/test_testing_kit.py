"""The plugin-author kit, run over everything registered (a new plugin is covered on arrival)."""

from __future__ import annotations

import pytest
from torch import nn

import skft
from skft import BackboneParts, BackboneSpec
from skft.augment import build_augmenter
from skft.testing import check_augmenter, check_backbone, check_freezer

IMAGE_BACKBONES = [
    n for n in skft.backbones().names() if skft.get_backbone(n).input_kind == "image"
]


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_registered_image_backbones(name):
    heavy = name.startswith(("vgg", "convnext", "resnet50"))
    check_backbone(name, input_shape=(3, 32, 32), fit=not heavy)


def test_mlp_backbone():
    check_backbone("mlp", input_shape=(5,))


@pytest.mark.parametrize("name", skft.freezers().names())
def test_registered_freezers(name):
    check_freezer(name)


IMAGE_AUGMENTERS = [  # other input kinds: their plugin's tests call check_augmenter(X=...)
    n for n in skft.augmenters().names() if "image" in build_augmenter(n, {}).input_kinds
]


@pytest.mark.parametrize("name", IMAGE_AUGMENTERS)
def test_registered_augmenters(name):
    check_augmenter(name)


def build_with_parametric_neck(pretrained, input_shape):
    return BackboneParts(
        groups=[("g", nn.Conv2d(3, 4, 3))],
        neck=nn.Sequential(nn.Flatten(), nn.LazyLinear(4)),
        feature_dim=4,
    )


def build_with_wrong_dim(pretrained, input_shape):
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return BackboneParts(groups=[("g", nn.Conv2d(3, 4, 3))], neck=neck, feature_dim=5)


def build_ok(pretrained, input_shape):
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return BackboneParts(groups=[("g", nn.Conv2d(3, 4, 3))], neck=neck, feature_dim=4)


class Noisy:
    def __call__(self, X, strength, generator):
        return X + 0.1


def test_kit_catches_a_neck_with_parameters():
    spec = BackboneSpec(name="bad", build=build_with_parametric_neck, has_pretrained=False)
    with pytest.raises(AssertionError, match="neck must have no parameters"):
        check_backbone(spec, fit=False)


def test_kit_catches_a_wrong_feature_dim():
    spec = BackboneSpec(name="bad", build=build_with_wrong_dim, has_pretrained=False)
    with pytest.raises(AssertionError, match=r"expected \(2, 5\)"):
        check_backbone(spec, fit=False)


def test_kit_catches_a_non_identity_augmenter():
    with pytest.raises(AssertionError, match="strength 0 must be identity"):
        check_augmenter(Noisy)


def test_kit_fits_backbones_built_with_partial(monkeypatch):
    """Regression: specs built with functools.partial never compared equal, so no fit ran."""
    from skft.estimators import FineTunedClassifier

    fitted = []
    fit = FineTunedClassifier.fit

    def spy(self, X, y, **kwargs):
        fitted.append(self.backbone)
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(FineTunedClassifier, "fit", spy)
    check_backbone("resnet18", input_shape=(3, 32, 32))
    assert fitted == ["resnet18"]
    check_backbone(skft.get_backbone("resnet18"), input_shape=(3, 32, 32))  # a fresh spec
    assert fitted == ["resnet18"] * 2


def test_kit_refuses_to_skip_the_fit_step():
    spec = BackboneSpec(name="nowhere", build=build_ok, has_pretrained=False)
    with pytest.raises(ValueError, match="no plugin registers or resolves that name"):
        check_backbone(spec)
    with pytest.raises(ValueError, match="pass fit=False"):
        check_backbone(spec, fit=True)
    check_backbone(spec, fit=False)


def test_kit_catches_an_unpicklable_spec():
    check_backbone(BackboneSpec(name="ok", build=build_ok, has_pretrained=False), fit=False)
    spec = BackboneSpec(name="bad", build=lambda p, s: build_ok(p, s), has_pretrained=False)
    with pytest.raises(AssertionError, match="cannot be pickled"):
        check_backbone(spec, fit=False)


def test_refuse_network_makes_connections_fail(monkeypatch):
    import socket

    from skft.testing import refuse_network

    refuse_network(monkeypatch)
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(OSError, match="network disabled"):
        socket.socket().connect(("127.0.0.1", 9))
