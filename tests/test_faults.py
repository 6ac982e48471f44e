"""Faults are named, not swallowed: broken plugins, a diverging loss, out of memory, bad files."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pluggy
import pytest
import torch

import skft
import skft.plugins as plugins
from skft import FineTunedClassifier, FineTunedRegressor
from skft.cli.main import main
from skft.plugins import PluginLoadWarning
from skft.training.faults import NonFiniteLossError


class _EntryPoint:
    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


class _HealthyPlugin:
    @skft.hookimpl
    def register_augmenters(self, register):
        register("healthy", lambda: None)


class _RaisingPlugin:
    @skft.hookimpl
    def register_backbones(self, register):
        raise RuntimeError("weights index missing")

    @skft.hookimpl
    def register_backbone_prefixes(self, register):
        raise RuntimeError("resolver crashed")


def _missing_module():
    raise ImportError("No module named 'skft_gone'")


@pytest.fixture
def broken_install(monkeypatch):
    """A fresh plugin manager and three installed entry points: healthy, unimportable, raising."""
    fresh = pluggy.PluginManager("skft")
    fresh.add_hookspecs(skft.hookspecs)
    eps = [
        _EntryPoint("healthy", "skft_healthy:plugin", _HealthyPlugin),
        _EntryPoint("gone", "skft_gone.plugin:hooks", _missing_module),
        _EntryPoint("raising", "skft_raising:plugin", _RaisingPlugin),
    ]
    monkeypatch.setattr(plugins, "pm", fresh)
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "_broken", {})
    monkeypatch.setattr(plugins, "_entry_points", {})
    monkeypatch.delenv("SKFT_LOAD_PLUGINS", raising=False)


def test_unimportable_plugin_is_named_and_others_load(broken_install):
    with pytest.warns(PluginLoadWarning) as record:
        plugins.load_plugins()
    (message,) = [str(w.message) for w in record]
    assert message == (
        "skft plugin 'gone' is broken (entry point 'skft_gone.plugin:hooks': loading it raised "
        "ImportError: No module named 'skft_gone'); the other plugins are loaded"
    )
    assert "healthy" in skft.augmenters() and "basic" in skft.augmenters()


def test_raising_hook_is_named_and_others_still_register(broken_install):
    with pytest.warns(PluginLoadWarning):
        plugins.load_plugins()
    with pytest.warns(PluginLoadWarning, match="'raising' is broken.*register_backbones raised"):
        names = skft.backbones().names()
    assert "smallcnn" in names and "resnet18" in names
    with pytest.raises(skft.UnknownNameError) as err:
        skft.get_backbone("timm:resnet")  # a name a broken plugin might have given
    text = str(err.value)
    assert "Broken plugins, which may have provided it: 'gone' (entry point" in text
    assert "'raising' (entry point 'skft_raising:plugin': register_backbones raised" in text


def test_skft_plugins_lists_broken_plugins(broken_install, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert (
        "broken: gone (entry point 'skft_gone.plugin:hooks': loading it raised ImportError" in out
    )
    assert "broken: raising (entry point 'skft_raising:plugin'" in out
    assert "healthy" in out


def test_a_resolvers_unknown_name_error_is_its_answer(broken_install):
    def resolve(name):
        raise ValueError(f"Unknown zoo model {name!r}")

    class Resolver:
        @skft.hookimpl
        def register_backbone_prefixes(self, register):
            register("zoo:", resolve)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        plugins.load_plugins()
        plugins.pm.register(Resolver(), "zoo")
        plugins._entry_points["zoo"] = "skft_zoo:plugin"
        with pytest.raises(ValueError, match="Unknown zoo model 'zoo:x'"):
            skft.get_backbone("zoo:x")
    assert "zoo" not in plugins.broken_plugins()


def test_plugins_registered_in_code_still_raise():
    plugin = _RaisingPlugin()
    skft.plugins.pm.register(plugin, "raising-in-code")
    try:
        with pytest.raises(RuntimeError, match="weights index missing"):
            skft.backbones()
    finally:
        skft.plugins.pm.unregister(plugin)


# --------------------------------------------------------------------------
# training faults
# --------------------------------------------------------------------------


def test_nan_loss_stops_with_epoch_batch_and_lr(digits, fast):
    X, y = digits
    reg = FineTunedRegressor(**{**fast, "lr": 1e12, "max_epochs": 5, "optimizer": torch.optim.SGD})
    with pytest.raises(NonFiniteLossError) as err:
        reg.fit(X, y * 1e3)
    text = str(err.value)
    assert text.startswith("training loss became ") and "at epoch " in text
    assert ", batch " in text and "(lr=1000000000000.0)" in text
    assert "try a lower lr (e.g. 1e+11)" in text
    epoch = int(text.split("at epoch ")[1].split(",")[0])
    assert 1 <= epoch <= 5 and len(reg.history) == epoch


def test_nan_loss_names_first_bad_batch(digits, fast, monkeypatch):
    X, y = digits
    calls = []
    real = FineTunedClassifier.get_loss

    def loss_nan_on_second_batch_of_epoch_2(self, *args, **kwargs):
        loss = real(self, *args, **kwargs)
        if self.module_.training:
            calls.append(1)
            if len(calls) == 6:  # 60 samples / 16 = 4 batches an epoch: epoch 2, batch 2
                return loss * math.nan
        return loss

    monkeypatch.setattr(FineTunedClassifier, "get_loss", loss_nan_on_second_batch_of_epoch_2)
    with pytest.raises(NonFiniteLossError, match="became nan at epoch 2, batch 2 "):
        FineTunedClassifier(**{**fast, "max_epochs": 3}).fit(X, y)


def test_out_of_memory_names_the_batch_size(digits, fast, monkeypatch):
    X, y = digits

    def oom(self, batch, **fit_params):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(FineTunedClassifier, "train_step_single", oom)
    with pytest.raises(torch.OutOfMemoryError) as err:
        FineTunedClassifier(**{**fast, "batch_size": 16}).fit(X, y)
    assert str(err.value) == (
        "out of memory on cpu with batch_size=16, image_size=16: try a smaller batch_size "
        "(e.g. 8), a smaller image_size, or a larger frozen_depth. Original error: "
        "CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert isinstance(err.value.__cause__, torch.OutOfMemoryError)


# --------------------------------------------------------------------------
# bad image files
# --------------------------------------------------------------------------


def test_corrupt_image_in_python_api_is_an_error_naming_the_file(digits, fast, tmp_path):
    from PIL import Image

    X, y = digits
    paths = []
    for i, img in enumerate(X[:6]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((img * 255).astype(np.uint8)).save(paths[-1])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"cannot read image file {bad}: cannot identify"):
        FineTunedClassifier(**fast).fit([*paths, str(bad)], [*y[:6], y[0]])
