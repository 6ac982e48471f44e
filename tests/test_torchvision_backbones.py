"""The torchvision backbone plugin: group cutting, weight loading, offline errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import urllib.error

import pytest
import torch
import torchvision

import skft.builtin.torchvision_backbones as tvb
from skft.plugins import backbones

NAMES = [name for name in backbones().names() if name in tvb.MODELS]


def test_every_model_is_registered() -> None:
    assert sorted(NAMES) == sorted(tvb.MODELS)
    assert len(NAMES) == 11


@pytest.mark.parametrize("name", NAMES)
def test_build_cut_and_forward(name: str) -> None:
    spec = backbones().get(name)
    parts = spec.build(False, (3, 32, 32))

    names = [g for g, _ in parts.groups]
    assert len(names) == len(set(names)) >= 4
    assert sum(p.numel() for p in parts.neck.parameters()) == 0

    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for _, group in parts.groups:
            group.eval()
            x = group(x)
        out = parts.neck(x)
    assert out.shape == (2, parts.feature_dim)

    # every parameter except the dropped classifier layer ends up in a group
    with torch.device("meta"):
        original = torchvision.models.get_model(name, weights=None)
    prefix = tvb.MODELS[name].classifier
    expected = [p for k, p in original.named_parameters() if not k.startswith(prefix)]
    dropped = [p for k, p in original.named_parameters() if k.startswith(prefix)]
    got = [p for _, g in parts.groups for p in g.parameters()]
    assert len(dropped) == 2  # weight and bias of one Linear
    assert len(got) == len(expected)
    assert sum(p.numel() for p in got) == sum(p.numel() for p in expected)


def test_table_matches_torchvision_defaults() -> None:
    for name in NAMES:
        spec = backbones().get(name)
        weights = torchvision.models.get_model_weights(name).DEFAULT
        assert spec.extra["weights"] == str(weights)
        assert spec.extra["url"] == weights.url
        transforms = weights.transforms()
        assert list(spec.mean) == pytest.approx(transforms.mean)
        assert list(spec.std) == pytest.approx(transforms.std)
        assert [spec.default_image_size] == transforms.crop_size


def test_spec_pickles() -> None:
    spec = pickle.loads(pickle.dumps(backbones().get("resnet18")))
    assert spec.build(False, (3, 32, 32)).feature_dim == 512


def test_load_from_path(tmp_path) -> None:
    state = torchvision.models.get_model("resnet18", weights=None, num_classes=7).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    parts = backbones().get("resnet18").build(str(path), (3, 32, 32))
    groups = dict(parts.groups)
    torch.testing.assert_close(groups["stem"][0].weight, state["conv1.weight"])
    torch.testing.assert_close(groups["layer4"][1].conv2.weight, state["layer4.1.conv2.weight"])
    # PathLike works too
    parts = backbones().get("resnet18").build(path, (3, 32, 32))
    torch.testing.assert_close(
        dict(parts.groups)["layer1"][0].conv1.weight, state["layer1.0.conv1.weight"]
    )


def test_load_other_architecture_fails(tmp_path) -> None:
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.get_model("resnet34", weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not match"):
        backbones().get("resnet18").build(str(path), (3, 32, 32))


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        backbones().get("resnet18").build(str(tmp_path / "nope.pth"), (3, 32, 32))


def test_pretrained_true_loads_default_weights(monkeypatch) -> None:
    state = torchvision.models.get_model("resnet18", weights=None).state_dict()
    urls = []

    def fake_download(url: str, *args, **kwargs):
        urls.append(url)
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    parts = backbones().get("resnet18").build(True, (3, 32, 32))
    assert urls == [torchvision.models.ResNet18_Weights.DEFAULT.url]
    torch.testing.assert_close(dict(parts.groups)["stem"][0].weight, state["conv1.weight"])


def test_offline_error_says_how_to_use_a_local_file(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError) as info:
        backbones().get("resnet18").build(True, (3, 32, 32))
    message = str(info.value)
    assert "pretrained='" in message
    assert "resnet18-f37072fd.pth" in message


def test_rejects_non_image_input() -> None:
    with pytest.raises(ValueError, match="images"):
        backbones().get("resnet18").build(False, (10,))


def test_import_does_not_import_torchvision() -> None:
    code = (
        "import sys, skft, skft.builtin.torchvision_backbones; "
        "assert 'torchvision' not in sys.modules, 'torchvision imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
