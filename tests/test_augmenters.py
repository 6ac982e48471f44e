"""skft.augment and the built-in augmenters: identity at 0, monotone strength, per sample,
composition, parameters, the plugin contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from torch import nn

import skft
from skft import FineTunedClassifier, hookimpl
from skft.augment import AugmenterAdapter, Compose, build_augmenter
from skft.builtin import randaugment
from skft.builtin.randaugment import OPS, RandAugment
from skft.plugins import pm
from skft.specs import Augmenter
from skft.testing import check_augmenter

AUGMENTERS = ["basic", "affine", "color", "randaugment", "mixup", "cutmix"]
STRENGTHS = (0.1, 0.25, 0.5, 0.75, 1.0)


def _images(digits, channels: int) -> torch.Tensor:
    """The digits at 16 px; the 3-channel version tints every image differently."""
    X = torch.from_numpy(digits[0]).unsqueeze(1)
    X = F.interpolate(X, size=16, mode="bilinear", align_corners=False).clamp(0, 1)
    if channels == 1:
        return X
    tint = torch.rand(len(X), 3, 1, 1, generator=torch.Generator().manual_seed(0))
    return X * (0.3 + 0.7 * tint)


# --------------------------------------------------------------------------
# the augmenters themselves
# --------------------------------------------------------------------------


def test_builtin_augmenters_are_registered():
    assert set(AUGMENTERS) | {"none"} <= set(skft.augmenters().names())
    assert "rand" in skft.augmenters()  # alias


@pytest.mark.parametrize("name", AUGMENTERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_contract_kit(name, channels):
    check_augmenter(name, shape=(8, channels, 16, 16))


@pytest.mark.parametrize("name", AUGMENTERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_effect_grows_with_strength(name, channels, digits):
    X = _images(digits, channels)
    aug = build_augmenter(name, {})
    assert torch.equal(aug(X, 0.0, torch.Generator().manual_seed(0)), X)
    effects = []
    for strength in STRENGTHS:
        out = aug(X, strength, torch.Generator().manual_seed(0))
        assert out.min() >= 0 and out.max() <= 1, f"{name} leaves [0, 1]"
        effects.append((out - X).abs().mean().item())
    assert effects[0] > 0
    assert all(a < b for a, b in zip(effects, effects[1:])), f"{name}: {effects}"


@pytest.mark.parametrize("op", OPS)
def test_each_randaugment_operation_grows_with_strength(op, digits):
    X = _images(digits, 3)
    aug = RandAugment(num_ops=1, ops=[op])
    effects = [
        (aug(X, s, torch.Generator().manual_seed(0)) - X).abs().mean().item() for s in STRENGTHS
    ]
    assert effects[-1] > 0, op
    assert effects == sorted(effects), f"{op}: {effects}"


def test_grayscale_colour_ops_are_brightness_and_contrast_only(digits):
    X = _images(digits, 1)
    assert torch.equal(RandAugment(ops=["color"])(X, 1.0, torch.Generator()), X)
    no_bc = build_augmenter("color", {"brightness": 0.0, "contrast": 0.0})
    assert torch.equal(no_bc(X, 1.0, torch.Generator()), X)  # saturation and hue: no-ops
    rgb = _images(digits, 3)
    assert not torch.equal(no_bc(rgb, 1.0, torch.Generator()), rgb)


def test_augmenters_are_per_sample(digits):
    """Identical inputs get different transformations within one batch."""
    X = _images(digits, 3)[:1].repeat(16, 1, 1, 1)
    for name in ("basic", "color", "randaugment"):
        out = build_augmenter(name, {})(X, 1.0, torch.Generator().manual_seed(0))
        assert len({tuple(o.flatten()[:64].tolist()) for o in out}) > 8, name


def test_mixing_targets():
    X = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = F.one_hot(torch.arange(6) % 3, 3).float()
    for name in ("mixup", "cutmix"):
        aug = build_augmenter(name, {})
        out, ym = aug(X, 1.0, torch.Generator().manual_seed(0), y=y)
        kept = (ym * y).sum(1)  # weight left on each sample's own class
        assert ((kept >= 0.5) & (kept <= 1)).all()
        assert torch.allclose(ym.sum(1), torch.ones(6))
        if name == "cutmix":  # the label weight is the share of pixels kept
            pixels = (out == X).all(1).float().mean(dim=(1, 2))
            assert torch.allclose(pixels, kept, atol=1e-6)
        else:
            assert torch.allclose(
                out,
                kept.view(-1, 1, 1, 1) * X + (1 - kept.view(-1, 1, 1, 1)) * X.roll(1, 0),
                atol=1e-6,
            )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmenters_run_on_the_batch_device():
    X = torch.rand(32, 3, 32, 32, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for name in AUGMENTERS:
        out = build_augmenter(name, {})(X, 0.7, gen)
        assert out.device == X.device and out.shape == X.shape


# --------------------------------------------------------------------------
# composition and parameters
# --------------------------------------------------------------------------


def test_composition_applies_in_order():
    X = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = F.one_hot(torch.arange(8) % 2, 2).float()
    for spec in ("basic+mixup", ["basic", "mixup"], " basic + mixup "):
        comp = build_augmenter(spec, {})
        assert isinstance(comp, Compose) and comp.mixes_targets and comp.input_kinds == ("image",)
        gen = torch.Generator().manual_seed(3)
        out, ym = comp(X, 0.6, gen, y=y)
        gen = torch.Generator().manual_seed(3)
        step = build_augmenter("basic", {})(X, 0.6, gen)
        ref, yref = build_augmenter("mixup", {})(step, 0.6, gen, y=y)
        assert torch.equal(out, ref) and torch.equal(ym, yref)
    assert not build_augmenter(["basic", "color"], {}).mixes_targets


def test_composition_params_are_routed():
    comp = build_augmenter("basic+mixup+cutmix", {"mixup__alpha": 0.3, "flip": 0.0})
    basic, mixup, cutmix = comp.augmenters
    assert (basic.flip, mixup.alpha, cutmix.alpha) == (0.0, 0.3, 1.0)
    comp = build_augmenter(["mixup", "cutmix"], {"alpha": 0.2})  # every component taking alpha
    assert [a.alpha for a in comp.augmenters] == [0.2, 0.2]
    with pytest.raises(TypeError, match="no augmenter in .* accepts 'rotate_by'"):
        build_augmenter("basic+mixup", {"rotate_by": 3})
    with pytest.raises(TypeError, match="augment__basic__nope"):
        build_augmenter("basic+mixup", {"basic__nope": 3})


def test_composition_survives_clone_and_search(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "augment_strength": 0.5}, augment=["basic", "mixup"])
    clf.set_params(augment__mixup__alpha=0.5)
    twin = clone(clf)
    assert twin.augment == ["basic", "mixup"] and twin.get_params()["augment__mixup__alpha"] == 0.5
    twin.fit(X, y)
    assert twin.augmenter_.names == ["basic", "mixup"]
    assert twin.augmenter_.augmenters[1].alpha == 0.5
    same = FineTunedClassifier(**{**fast, "augment_strength": 0.5}, augment="basic+mixup")
    same.set_params(augment__mixup__alpha=0.5).fit(X, y)
    np.testing.assert_array_equal(twin.predict_proba(X), same.predict_proba(X))
    pickle.loads(pickle.dumps(twin)).predict(X)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"augment": "basci"}, skft.UnknownNameError, "Did you mean 'basic'"),
        ({"augment": "basic+mixpu"}, skft.UnknownNameError, "Did you mean 'mixup'"),
        ({"augment": 3}, TypeError, "augment must be a name"),
        ({"augment": []}, ValueError, "one or more non-empty names"),
        ({"augment": "basic+"}, ValueError, "one or more non-empty names"),
        ({"augment__flip": 2.0}, ValueError, r"augment__flip must be a float in the range \[0.0, "),
        ({"augment": "color", "augment__hue": True}, ValueError, "augment__hue must be a float"),
        ({"augment": "randaugment", "augment__num_ops": 11}, ValueError, r"num_ops .* \[1, 10\]"),
        ({"augment": "mixup", "augment__alpha": -1}, ValueError, "augment__alpha"),
        ({"augment": "randaugment", "augment__ops": ["spin"]}, ValueError, "unknown operations"),
        ({"augment": "randaugment", "augment__num_ops": 0}, ValueError, "num_ops"),
        ({"augment": "color", "augment__hue": 0.7}, ValueError, "augment__hue"),
        ({"augment": "color", "augment__gamma": 1}, TypeError, "augment__gamma"),
        ({"tta": "yes"}, ValueError, "tta must be False, True"),
        ({"tta": 9}, ValueError, "tta must be"),
        ({"tta": -1}, ValueError, "tta must be"),
        ({"augment": "mixup", "criterion": nn.NLLLoss}, ValueError, "CrossEntropyLoss"),
    ],
)
def test_clear_errors(kwargs, error, match, digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "augment_strength": 0.5, **kwargs})
    with pytest.raises(error, match=match):
        clf.fit(X, y)


def test_tta_needs_images(fast):
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    clf = FineTunedClassifier(**{**fast, "backbone": "mlp", "image_size": None}, tta=True)
    with pytest.raises(ValueError, match="tta=True needs image input"):
        clf.fit(X, np.arange(20) % 2)


def test_randaugment_search_space():
    space = randaugment.search_space(FineTunedClassifier(augment="randaugment"))
    assert space["augment__num_ops"].low == 1 and space["augment__num_ops"].high == 3
    composed = randaugment.search_space(FineTunedClassifier(augment="color+rand"))
    assert set(composed) == {"augment__rand__num_ops"}
    assert randaugment.search_space(FineTunedClassifier(augment="basic+mixup")) is None
    assert not hasattr(RandAugment, "search_space")


def test_builtin_augmenters_declare_the_contract():
    for name in skft.augmenters().names():
        aug = build_augmenter(name, {})
        assert isinstance(aug, Augmenter) and not isinstance(aug, AugmenterAdapter), name
    assert build_augmenter("mixup", {}).input_kinds == ("image", "tabular")
    assert build_augmenter("cutmix", {}).mixes_targets
    assert build_augmenter("basic", {}).input_kinds == Augmenter.input_kinds
    assert not build_augmenter("basic", {}).mixes_targets


def _shift(X, strength, generator):
    return X + strength


def make_shift(**params):
    return _shift


class Declares:
    """A third-party augmenter that declares the attributes without subclassing."""

    input_kinds = ("tabular",)
    mixes_targets = True

    def __call__(self, X, strength, generator, y=None):
        return (X, y) if y is not None else X


class PlainPlugin:
    @hookimpl
    def register_augmenters(self, register):
        register("shift", make_shift)
        register("declares", Declares)


@pytest.fixture
def plain_augmenters():
    plugin = PlainPlugin()
    skft.plugins.load_plugins()
    pm.register(plugin, "plain-augmenters")
    try:
        yield
    finally:
        pm.unregister(plugin)


def test_any_callable_gets_the_declared_attributes(plain_augmenters):
    X = torch.zeros(2, 3, 4, 4)
    shift = build_augmenter("shift", {})
    assert isinstance(shift, AugmenterAdapter)  # a plain function: the base's defaults
    assert (shift.input_kinds, shift.mixes_targets) == (("image",), False)
    assert torch.equal(shift(X, 0.5, None), X + 0.5)
    declares = build_augmenter("declares", {})
    assert (declares.input_kinds, declares.mixes_targets) == (("tabular",), True)
    y = torch.ones(2, 3)
    assert declares(X, 1.0, None, y=y)[1] is y
    comp = build_augmenter("declares+mixup", {})
    assert comp.mixes_targets and comp.input_kinds == ("tabular",)
    assert all(isinstance(a, Augmenter) for a in comp.augmenters)
    pickle.loads(pickle.dumps(shift))


@pytest.mark.parametrize(
    ("augment", "strength", "on"),
    [
        ("basic", 0.5, True),
        ("basic", 0.0, False),
        ("none", 1.0, False),
        ("none+mixup", 0.5, True),
        (["none", "none"], 1.0, False),
    ],
)
def test_one_answer_to_is_augmentation_on(augment, strength, on):
    from skft.augment import augmentation_on

    assert augmentation_on(augment, strength) is on
