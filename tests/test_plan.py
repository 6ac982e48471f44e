"""The fit plan (skft.params.plan): the rule's decisions on synthetic data sizes; user values
win."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

import skft
from skft import FineTunedClassifier, FineTunedRegressor
from skft.params.plan import (
    FINE_TUNE_STEPS,
    PROBE_BELOW_PER_CLASS,
    PROBE_EPOCHS,
    SMALL_IMAGE_SIZE,
    DataProfile,
    plan_fit,
)
from skft.plugins import get_backbone, pm


def _plan(profile: DataProfile, **params):
    return plan_fit(get_backbone("efficientnet_lite0"), profile, {"pretrained": True, **params})


def photos(n: int, classes: int = 2) -> DataProfile:
    return DataProfile("image", n, classes, n // classes, channels=3, source_side=300)


@pytest.mark.parametrize("per_class", [5, 20, PROBE_BELOW_PER_CLASS - 1])
def test_few_colour_photos_per_class_get_a_linear_probe(per_class):
    plan = _plan(photos(per_class * 4, classes=4))
    assert plan.values["frozen_depth"] == "all"
    assert plan.values["augment"] == "none"  # the probe trains on cached features
    assert plan.values["max_epochs"] == PROBE_EPOCHS
    assert plan.values["lr"] > 1e-3  # the head alone: a higher rate than fine-tuning
    assert "per class" in plan.reasons["frozen_depth"]


@pytest.mark.parametrize("per_class", [PROBE_BELOW_PER_CLASS, 1000])
def test_many_photos_per_class_are_fine_tuned_for_a_step_budget(per_class):
    plan = _plan(photos(per_class * 3, classes=3))
    values = plan.values
    assert values["frozen_depth"] == 0
    steps = values["max_epochs"] * -(-per_class * 3 // values["batch_size"])
    assert steps >= FINE_TUNE_STEPS or values["max_epochs"] == 5  # the budget, or the floor
    assert values["image_size"] == get_backbone("efficientnet_lite0").default_image_size


def test_one_small_class_decides_the_regime():
    # 1,000 ants and 10 bees: the rare class has too few samples to move the backbone
    profile = DataProfile("image", 1010, 2, 10, channels=3, source_side=300)
    assert _plan(profile).values["frozen_depth"] == "all"


@pytest.mark.parametrize("channels,side", [(1, 8), (3, 16), (1, 28), (1, 200)])
def test_small_or_grayscale_images_are_fine_tuned(channels, side):
    profile = DataProfile("image", 50, 10, 5, channels=channels, source_side=side)
    values = _plan(profile).values
    assert values["frozen_depth"] == 0  # far from ImageNet: frozen features do not carry
    expected_size = SMALL_IMAGE_SIZE if side <= 32 else 224
    assert values["image_size"] == expected_size
    assert values["batch_size"] < 32  # 50 samples: several steps per epoch
    assert values["max_epochs"] * -(-50 // values["batch_size"]) >= FINE_TUNE_STEPS


def test_epochs_fall_as_the_data_grows():
    epochs = [
        _plan(DataProfile("image", n, 10, n // 10, 1, 8)).values["max_epochs"]
        for n in (50, 200, 1000, 10_000)
    ]
    assert epochs == sorted(epochs, reverse=True) and epochs[0] > epochs[-1]


def test_user_values_always_win():
    params = dict(
        frozen_depth=2,
        lr=0.5,
        max_epochs=3,
        batch_size=7,
        augment="color",
        image_size=40,
        lr_schedule="linear",
    )
    plan = _plan(photos(40), **params)
    for name, value in params.items():
        assert plan.values[name] == value
        assert plan.reasons[name] == "set by the user"


@pytest.mark.parametrize("depth", [0, 2])
def test_a_depth_the_user_chose_to_train_gets_fine_tuning_companions(depth):
    # few photos per class would get a probe; the user asked to train: not the probe's rate
    values = _plan(photos(40), frozen_depth=depth).values
    assert values["frozen_depth"] == depth
    assert values["lr"] == 1e-3 and values["augment"] == "basic"
    assert values["max_epochs"] * -(-40 // values["batch_size"]) >= FINE_TUNE_STEPS
    assert values["image_size"] == get_backbone("efficientnet_lite0").default_image_size


def test_a_probe_the_user_chose_gets_probe_companions():
    many = photos(PROBE_BELOW_PER_CLASS * 4)  # the data alone would fine-tune
    values = _plan(many, frozen_depth="all").values
    assert (values["lr"], values["augment"], values["max_epochs"]) == (1e-2, "none", PROBE_EPOCHS)
    small = DataProfile("image", 50, 10, 5, channels=1, source_side=8)
    values = _plan(small, frozen_depth="all").values
    assert values["augment"] == "none" and values["image_size"] == SMALL_IMAGE_SIZE
    far = _plan(small, frozen_depth=1).values
    assert far["augment"] == "affine" and far["lr"] > 1e-3  # the far row's fine-tuning


def test_random_weights_keep_the_static_defaults():
    plan = _plan(photos(40), pretrained=False)
    assert plan.values["frozen_depth"] == 0 and plan.values["max_epochs"] == 10


def test_text_backbones_keep_their_declared_defaults():
    spec = get_backbone("smallcnn")
    plan = plan_fit(spec, DataProfile("tabular", 30, 2, 15), {"pretrained": False})
    assert plan.values["lr"] == 1e-3 and plan.reasons["lr"] == "core default"


@pytest.mark.parametrize(
    "shape,channels,side",
    [((5, 8, 8), 1, 8), ((5, 3, 40, 30), 3, 30), ((5, 40, 30, 3), 3, 30), ((5, 20, 20, 1), 1, 20)],
)
def test_profile_reads_arrays(shape, channels, side):
    profile = DataProfile.of(np.zeros(shape), np.arange(5) % 2, "image", classifier=True)
    assert (profile.channels, profile.source_side) == (channels, side)
    assert (profile.n_samples, profile.n_classes, profile.min_class_count) == (5, 2, 2)


def test_profile_reads_file_headers(tmp_path):
    paths = []
    for i, (size, mode) in enumerate([((400, 300), "RGB"), ((500, 200), "RGB"), ((64, 64), "L")]):
        path = tmp_path / f"{i}.png"
        Image.new(mode, size).save(path)
        paths.append(str(path))
    profile = DataProfile.of(paths, ["a", "b", "a"], "image", classifier=True)
    assert profile.channels == 3 and profile.source_side == 200  # majority mode, median side
    assert (profile.n_classes, profile.min_class_count) == (2, 1)


def test_profile_of_a_regression_has_no_classes():
    profile = DataProfile.of(np.zeros((6, 8, 8)), np.linspace(0, 1, 6), "image", classifier=False)
    assert profile.n_classes is None and profile.per_class == 6


class _PretendPretrained:
    """smallcnn's architecture under a name that claims pretrained weights (with a rule)."""

    def __init__(self, name: str = "pretendnet", plan=None) -> None:
        self.name, self.plan = name, plan

    @skft.hookimpl
    def register_backbones(self, register):
        from skft.builtin.small_backbones import build_smallcnn

        register(
            skft.BackboneSpec(
                name=self.name,
                build=lambda pretrained, shape: build_smallcnn(False, shape),
                default_image_size=32,
                plan=self.plan,
            )
        )


@pytest.fixture
def pretend():
    pm.register(_PretendPretrained(), "skft-pretend")
    yield "pretendnet"
    pm.unregister(name="skft-pretend")


def _colour_images(n: int, side: int = 40):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    return X, np.arange(n) % 2


def test_fit_uses_the_plan_and_keeps_parameters(pretend, tmp_path):
    X, y = _colour_images(24)
    clf = FineTunedClassifier(pretend, random_state=0, max_epochs=2)
    clf.fit(X, y)
    used = clf.resolved_params_
    assert used["frozen_depth"] == "all" and used["max_epochs"] == 2
    assert not any(p.requires_grad for p in clf.module_.groups.parameters())
    assert len(clf.history) == 2 and clf.history[-1]["batches"][0]
    assert clf.get_params()["frozen_depth"] is None  # the parameter keeps None
    assert clone(clf).get_params(deep=False) == FineTunedClassifier(
        pretend, random_state=0, max_epochs=2
    ).get_params(deep=False)
    assert "linear probe" in str(clf.fit_plan_)
    loaded = skft.load(clf.save(tmp_path / "m.skft"))
    assert loaded.resolved_params_ == used
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)


def test_a_new_fit_makes_a_new_plan(pretend):
    X, y = _colour_images(24)
    clf = FineTunedClassifier(pretend, random_state=0, max_epochs=1)
    clf.fit(X, y)
    assert clf.resolved_params_["frozen_depth"] == "all"
    gray = X[..., 0]  # the same images in grayscale: fine-tuned
    clf.fit(gray, y)
    assert clf.resolved_params_["frozen_depth"] == 0
    assert any(p.requires_grad for p in clf.module_.groups.parameters())


def test_resolved_params_before_fit_is_an_attribute_error(pretend):
    with pytest.raises(AttributeError, match="call fit first"):
        _ = FineTunedRegressor(pretend).resolved_params_


# --------------------------------------------------------------------------
# a rule that picks a freezing policy (and its parameters)
# --------------------------------------------------------------------------


def _policy_rule(profile, defaults):
    """Picks the 'gradual' policy with one of its parameters when nobody chose a policy."""
    _policy_rule.seen = defaults["freeze"]
    if defaults["freeze"] is not None:
        return {}
    return {
        "freeze": ("gradual", "the test rule"),
        "freeze__every": (3, "the test rule"),
        "frozen_depth": ("all", "with the policy"),
    }


def _rule_spec():
    from dataclasses import replace

    return replace(get_backbone("smallcnn"), plan=_policy_rule)


def test_rules_see_no_policy_when_nobody_chose_one():
    plan = plan_fit(_rule_spec(), DataProfile("image", 30, 2, 15), {"pretrained": True})
    assert _policy_rule.seen is None
    assert plan.values["freeze"] == "gradual" and plan.values["freeze__every"] == 3
    assert plan.values["frozen_depth"] == "all"
    plan = plan_fit(_rule_spec(), DataProfile("image", 30, 2, 15), {"pretrained": False})
    assert plan.values["freeze"] == "depth" and plan.reasons["freeze"] == "core default"


def test_a_policy_set_by_the_user_wins_with_its_own_parameters():
    plan = plan_fit(
        _rule_spec(), DataProfile("image", 30, 2, 15), {"pretrained": True, "freeze": "depth"}
    )
    assert _policy_rule.seen == "depth"  # the rule is told, and keeps out
    assert plan.values["freeze"] == "depth" and plan.reasons["freeze"] == "set by the user"
    assert "freeze__every" not in plan.values and plan.values["frozen_depth"] == 0


def test_a_rule_chosen_policy_takes_the_users_sub_parameters():
    params = {"pretrained": True, "freeze__every": 5}
    plan = plan_fit(_rule_spec(), DataProfile("image", 30, 2, 15), params)
    assert plan.values["freeze__every"] == 5
    assert plan.reasons["freeze__every"] == "set by the user"


def test_a_fit_builds_the_planned_policy_with_its_planned_parameters():
    from skft.builtin.freezers import DepthFreezer, GradualFreezer

    pm.register(_PretendPretrained("rulenet", _policy_rule), "skft-rulenet")
    try:
        X, y = _colour_images(24)
        clf = FineTunedClassifier("rulenet", max_epochs=1, random_state=0).fit(X, y)
        assert clf.get_params()["freeze"] is None  # the parameter keeps None
        assert clf.resolved_params_["freeze"] == "gradual"
        assert isinstance(clf.freeze_policy_, GradualFreezer)
        assert clf.freeze_policy_.every == 3
        mine = FineTunedClassifier("rulenet", max_epochs=1, freeze="depth", freeze__bn="train")
        mine.fit(X, y)
    finally:
        pm.unregister(name="skft-rulenet")
    assert type(mine.freeze_policy_) is DepthFreezer
    assert mine.resolved_params_["frozen_depth"] == 0  # the rule's companion is dropped too


@pytest.mark.parametrize(
    "name,ok",
    [("lr", True), ("freeze__pair_iterations", True), ("augment__p", True),
     ("module__x", False), ("freeze__a__b", False), ("nonsense", False), ("freeze__", False),
     ("freeze__import os", False)],
)  # fmt: skip
def test_saved_plans_name_planned_parameters_and_policy_parameters_only(name, ok):
    from skft.io.loader import _plan_from_json

    data = {"profile": {"input_kind": "image", "n_samples": 4}, "values": {name: 1}, "reasons": {}}
    if ok:
        assert _plan_from_json(data).values == {name: 1}
    else:
        with pytest.raises(ValueError, match="plan values must name only"):
            _plan_from_json(data)


@pytest.mark.parametrize(
    "side,expected",
    [(None, 224), (150, 224), (224, 224), (260, 256), (300, 288), (2000, 288)],
)
def test_a_probe_sees_photos_a_little_larger_than_the_backbone_was_trained_on(side, expected):
    from skft.params.plan import PROBE_SIZE_FACTOR

    profile = DataProfile("image", 60, 2, 30, channels=3, source_side=side)
    plan = _plan(profile)
    assert plan.values["frozen_depth"] == "all"
    assert plan.values["image_size"] == expected
    assert expected <= max(224, 224 * PROBE_SIZE_FACTOR)  # never beyond the factor
    if expected != 224:
        assert "FixRes" in plan.reasons["image_size"]
    assert _plan(profile, image_size=224).values["image_size"] == 224  # the user's size wins


def test_fine_tuning_and_small_images_keep_their_sizes():
    many = DataProfile("image", 2000, 2, 1000, channels=3, source_side=500)
    assert _plan(many).values["image_size"] == 224  # fine-tuned at the backbone's size
    gray = DataProfile("image", 60, 2, 30, channels=1, source_side=500)
    assert _plan(gray).values["image_size"] == 224
    assert _plan(photos(40)).values["image_size"] == 288  # 300-px sources
