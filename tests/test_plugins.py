"""The plugin host: registries, close-match errors, throwaway plugins, entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import skft
from skft import BackboneParts, BackboneSpec, FineTunedClassifier, hookimpl
from skft.plugins import DEFAULT_PLUGINS, pm


class RecordingAugmenter:
    """Counts calls and the batch sizes it saw."""

    input_kinds = ("image",)
    calls: list[int] = []

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, X, strength, generator):
        RecordingAugmenter.calls.append(len(X))
        return X


class ThrowawayPlugin:
    @hookimpl
    def register_backbones(self, register):
        def build(pretrained, input_shape):
            groups = [("conv", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))]
            neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            return BackboneParts(groups=groups, neck=neck, feature_dim=4)

        register(
            BackboneSpec(
                name="throwaway", build=build, has_pretrained=False, default_image_size=12
            ),
            aliases=("tw",),
        )

    @hookimpl
    def register_augmenters(self, register):
        register("recording", RecordingAugmenter)


@pytest.fixture
def throwaway():
    plugin = ThrowawayPlugin()
    skft.plugins.load_plugins()
    pm.register(plugin, "throwaway")
    RecordingAugmenter.calls = []
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_builtins_are_registered():
    names = skft.backbones().names()
    for name in (
        "resnet18",
        "resnet50",
        "vgg16_bn",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "convnext_tiny",
        "mlp",
        "smallcnn",
    ):
        assert name in names
    assert {"depth"} <= set(skft.freezers().names())
    assert {"none", "basic"} <= set(skft.augmenters().names())
    for name in DEFAULT_PLUGINS:
        assert pm.get_plugin(name) is not None


def test_throwaway_plugin_used_by_name(throwaway, digits):
    X, y = digits
    assert "throwaway" in skft.backbones()
    clf = FineTunedClassifier(
        "tw",
        pretrained=False,
        augment="recording",
        augment_strength=0.5,
        max_epochs=2,
        batch_size=20,
        verbose=0,
    ).fit(X, y)
    assert clf.backbone_spec_.name == "throwaway"
    assert clf.input_shape_ == (1, 12, 12)
    assert RecordingAugmenter.calls == [20, 20, 20] * 2  # training batches only
    clf.predict(X)
    clf.predict_proba(X)
    clf.score(X, y)
    assert RecordingAugmenter.calls == [20, 20, 20] * 2  # never at predict time


def test_unregistered_plugin_is_gone(throwaway):
    assert "Did you mean 'throwaway'" in str(
        pytest.raises(skft.UnknownNameError, skft.get_backbone, "throwawy").value
    )
    pm.unregister(throwaway)
    try:
        with pytest.raises(skft.UnknownNameError, match="Registered: ") as err:
            skft.get_backbone("throwaway")
        assert "throwaway," not in str(err.value)
    finally:
        pm.register(throwaway, "throwaway")  # the fixture unregisters it again


def test_augmenter_never_sees_validation_data(throwaway, digits):
    from skorch.dataset import ValidSplit

    X, y = digits
    FineTunedClassifier(
        "throwaway",
        pretrained=False,
        augment="recording",
        max_epochs=1,
        batch_size=100,
        verbose=0,
        train_split=ValidSplit(4),
    ).fit(X, y)
    assert RecordingAugmenter.calls == [45]  # 60 minus the 15 held out


def test_blocked_default_plugin(digits):
    name = "skft.builtin.small_backbones"
    plugin = pm.get_plugin(name)
    pm.unregister(plugin)
    try:
        assert "smallcnn" not in skft.backbones()
    finally:
        pm.register(plugin, name)
    assert "smallcnn" in skft.backbones()


def test_duplicate_registration_is_an_error(throwaway):
    class Again:
        @hookimpl
        def register_backbones(self, register):
            register(BackboneSpec(name="throwaway", build=lambda p, s: None))

    again = Again()
    pm.register(again)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            skft.backbones()
    finally:
        pm.unregister(again)


def test_import_is_light():
    code = "import skft, sys; print('torchvision' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_allow_list_env_var_skips_entry_points():
    code = (
        "import skft; names = skft.backbones().names(); "
        "print('efficientnet_lite0' in names, 'resnet18' in names)"
    )
    env = {"SKFT_LOAD_PLUGINS": "", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=Path(__file__).parent,
    )
    assert out.stdout.split() == ["False", "True"]


def test_hooks_are_documented_and_tested():
    """Every hook has a numpydoc docstring and is exercised by a test (datasette's meta-test)."""
    from skft import hookspecs

    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    tests += "".join(p.read_text() for p in Path(__file__).parents[1].glob("plugins/*/tests/*.py"))
    names = [n for n in vars(pm.hook) if not n.startswith("_")]
    assert {"register_input_kinds", "register_backbones", "search_space"} <= set(names)
    for name in names:
        doc = getattr(hookspecs, name).__doc__
        assert doc and "Parameters" in doc, name
        assert name in tests, name


def test_state_after_plugin_change_is_not_cached(throwaway):
    assert torch.is_tensor(torch.zeros(1))  # registries rebuild per call: nothing to invalidate
    assert "throwaway" in skft.backbones()


def test_register_input_kinds_and_unknown_kind(digits):
    """A backbone of an input kind nobody registered fails at fit, naming the kind."""
    from skft.specs import InputKind

    def build(pretrained, input_shape):
        return BackboneParts([("lin", nn.Linear(input_shape[0], 4))], nn.Identity(), 4)

    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register(BackboneSpec("bag", build, has_pretrained=False, input_kind="bag"))

    class KindPlugin:
        @hookimpl
        def register_input_kinds(self, register):
            flat = InputKind("bag", adapter=lambda X, image_size=None: torch.as_tensor(X).float())
            register(flat)

    X = torch.rand(12, 5).numpy()
    y = [0, 1] * 6
    params = dict(pretrained=False, augment="none", max_epochs=1, verbose=0)
    pm.register(Plugin(), "bag-backbone")
    try:
        with pytest.raises(ValueError, match="Unknown input kind 'bag'"):
            FineTunedClassifier("bag", **params).fit(X, y)
        pm.register(KindPlugin(), "bag-kind")
        assert "bag" in skft.plugins.input_kinds()
        clf = FineTunedClassifier("bag", **params).fit(X, y)
        assert clf.input_kind_.name == "bag" and clf.predict(X).shape == (12,)
    finally:
        pm.unregister(name="bag-backbone")
        if pm.get_plugin("bag-kind") is not None:
            pm.unregister(name="bag-kind")


def _tiny_build(pretrained, input_shape):
    return BackboneParts([("lin", nn.Linear(input_shape[0], 4))], nn.Identity(), 4)


def test_open_ended_names_go_to_the_longest_registered_prefix():
    from skft.plugins import UnknownNameError, backbone_prefixes

    asked = []

    def resolver(tag):
        def resolve(name):
            asked.append((tag, name))
            return BackboneSpec(name, _tiny_build, has_pretrained=False, input_kind="tabular")

        return resolve

    class Prefixes:
        @hookimpl
        def register_backbone_prefixes(self, register):
            register("zoo:", resolver("zoo"), description="<any zoo model>")
            register("zoo:big/", resolver("big"))

    skft.plugins.load_plugins()
    pm.register(Prefixes(), "prefixes")
    try:
        assert {"zoo:", "zoo:big/"} <= set(backbone_prefixes())
        assert skft.get_backbone("zoo:cat").name == "zoo:cat"
        assert skft.get_backbone("zoo:big/elephant").name == "zoo:big/elephant"
        assert asked == [("zoo", "zoo:cat"), ("big", "zoo:big/elephant")]
        assert skft.get_backbone("resnet18").name == "resnet18"  # registered names first
        with pytest.raises(UnknownNameError, match="Also open-ended: .*zoo:<name>"):
            skft.get_backbone("zo:cat")
    finally:
        pm.unregister(name="prefixes")
    assert "zoo:" not in backbone_prefixes()


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("", lambda n: None), TypeError, "non-empty str"),
        (("x:", "not callable"), TypeError, "must be callable"),
        (("x:", lambda n: "a string"), TypeError, "returned 'a string'"),
    ],
)
def test_bad_prefix_registrations_are_named(args, error, match):
    class Bad:
        @hookimpl
        def register_backbone_prefixes(self, register):
            register(*args)

    skft.plugins.load_plugins()
    pm.register(Bad(), "bad-prefix")
    try:
        with pytest.raises(error, match=match):
            skft.get_backbone("x:anything")
    finally:
        pm.unregister(name="bad-prefix")
