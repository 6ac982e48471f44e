"""Adapter-only model files (skft.io.base_weights): small saves, the base's checksum, and
the error when the base is not the one the adapters were trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import skft
from skft import FineTunedClassifier, hookimpl
from skft.io.persist import ModelFileError
from skft.io.weights import load_state_dict_file
from skft.plugins import pm
from skft.specs import BackboneParts, BackboneSpec

pytest.importorskip("peft")


def _blocks(channels: int) -> list[tuple[str, nn.Module]]:
    def block(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out))

    return [("block1", block(channels, 8)), ("block2", block(8, 16)), ("block3", block(16, 16))]


def _build(pretrained, input_shape):
    """A 'pretrained' backbone: True gives fixed weights (as a known checkpoint would),
    a path loads a state dict of the three blocks."""
    groups = _blocks(input_shape[0])
    model = nn.Sequential(*[m for _, m in groups])
    if pretrained is True:
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    elif pretrained:
        load_state_dict_file(model, pretrained)
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return BackboneParts(groups=groups, neck=neck, feature_dim=16)


class PretrainedPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(BackboneSpec(name="test-pretrained", build=_build, default_image_size=16))


@pytest.fixture(scope="module", autouse=True)
def pretrained_backbone():
    plugin = PretrainedPlugin()
    pm.register(plugin, "test-pretrained")
    try:
        yield
    finally:
        pm.unregister(plugin)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8)
    return X, np.arange(32) % 2


def fitted(X, y, **params):
    settings = dict(
        backbone="test-pretrained", freeze="lora", max_epochs=2, batch_size=16, lr=0.05,
        augment="none", verbose=0, random_state=0,
    )  # fmt: skip
    return FineTunedClassifier(**{**settings, **params}).fit(X, y)


def weights_bytes(folder) -> int:
    return (folder / "weights.safetensors").stat().st_size


def test_adapter_save_is_small_and_loads_the_same(images, tmp_path):
    X, y = images
    clf = fitted(X, y, frozen_depth=1)
    small = clf.save(tmp_path / "small.skft")
    full = clf.save(tmp_path / "full.skft", adapter_only=False)
    assert weights_bytes(small) < weights_bytes(full)
    config = json.loads((small / "config.json").read_text())
    base = config["base"]
    assert base["backbone"] == "test-pretrained" and base["pretrained"] is True
    assert len(base["sha256"]) == 64
    # the frozen group's weights stay out; the adapters and the head are in the file
    assert "groups.0.0.weight" in base["omitted"]
    assert not any("lora_" in k or k.startswith("head.") for k in base["omitted"])
    for folder in (small, full):
        again = skft.load(folder)
        np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)
        assert again.freeze == "lora"
    assert "base" not in json.loads((full / "config.json").read_text())


def test_bitfit_saves_biases_and_moved_statistics(images, tmp_path):
    X, y = images
    clf = fitted(X, y, freeze="bitfit", frozen_depth=1)
    folder = clf.save(tmp_path / "bitfit.skft")
    omitted = json.loads((folder / "config.json").read_text())["base"]["omitted"]
    assert "groups.1.0.weight" in omitted  # a frozen weight of an adapted group
    assert "groups.1.0.bias" not in omitted  # BitFit trained it
    again = skft.load(folder)
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_loading_adapters_onto_another_base_is_refused(images, tmp_path):
    X, y = images
    weights = tmp_path / "base.pt"
    torch.manual_seed(1)
    torch.save(nn.Sequential(*[m for _, m in _blocks(3)]).state_dict(), weights)
    folder = fitted(X, y, pretrained=str(weights)).save(tmp_path / "m.skft")
    skft.load(folder)  # the same base: fine
    torch.manual_seed(2)
    torch.save(nn.Sequential(*[m for _, m in _blocks(3)]).state_dict(), weights)  # replaced
    with pytest.raises(ModelFileError, match="other base weights"):
        skft.load(folder)


def test_random_bases_are_saved_whole(images, tmp_path):
    X, y = images
    clf = fitted(X, y, pretrained=False)
    folder = clf.save(tmp_path / "random.skft")
    assert "base" not in json.loads((folder / "config.json").read_text())
    with pytest.raises(ValueError, match="needs a known pretrained base"):
        clf.save(tmp_path / "x.skft", adapter_only=True)


def test_a_tampered_base_record_is_refused(images, tmp_path):
    X, y = images
    folder = fitted(X, y).save(tmp_path / "m.skft")
    config = json.loads((folder / "config.json").read_text())
    config["base"]["omitted"] = {"__class__": "os.system"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="base must hold"):
        skft.load(folder)


def test_merged_estimators_save_whole(images, tmp_path):
    X, y = images
    clf = fitted(X, y).merge_adapters()
    folder = clf.save(tmp_path / "merged.skft")
    assert "base" not in json.loads((folder / "config.json").read_text())
    np.testing.assert_allclose(skft.load(folder).predict_proba(X), clf.predict_proba(X), atol=1e-6)
