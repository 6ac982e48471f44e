"""Freezing policies: what trains at each epoch, BatchNorm, per-group learning rates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skft import FineTunedClassifier, UnknownNameError, freezers, hookimpl
from skft.builtin import freezers as builtin_freezers
from skft.builtin.freezers import DepthFreezer, GradualFreezer, LinearProbeFineTune
from skft.plugins import pm
from skft.specs import FreezePolicy
from skft.training.freezing import build_freezer

GROUPS = ("block1", "block2", "block3")  # smallcnn's layer groups


class EpochRecorder(Callback):
    """Per epoch: requires_grad per group, which groups' weights moved, group lrs."""

    def initialize(self):
        self.trainable, self.moved, self.lrs, self.optimizers = [], [], [], []
        return self

    def _weights(self, net):
        return [
            [p.detach().clone() for p in group.parameters()] for group in net.module_.groups
        ] + [[p.detach().clone() for p in net.module_.head.parameters()]]

    def on_epoch_begin(self, net, **kwargs):
        self.trainable.append(
            tuple(all(p.requires_grad for p in g.parameters()) for g in net.module_.groups)
        )
        self.lrs.append({g["name"]: g["lr"] for g in net.optimizer_.param_groups})
        self.optimizers.append(id(net.optimizer_))
        self._before = self._weights(net)

    def on_epoch_end(self, net, **kwargs):
        after = self._weights(net)
        self.moved.append(
            tuple(
                any(not torch.equal(a, b) for a, b in zip(before, now))
                for before, now in zip(self._before, after)
            )
        )


def fit_recorded(digits, fast, **params):
    X, y = digits
    rec = EpochRecorder()
    settings = {**fast, "max_epochs": 4, "feature_cache": False, **params}
    clf = FineTunedClassifier(callbacks=[("rec", rec)], **settings).fit(X, y)
    return clf, rec


def test_builtin_policies_are_registered():
    names = freezers().names()
    assert {"depth", "gradual", "lp_ft"} <= set(names)
    assert freezers().get("lpft") is LinearProbeFineTune


@pytest.mark.parametrize(
    ("policy", "params", "depth", "expected"),
    [
        ("depth", {}, 1, [(False, True, True)] * 4),
        (
            "gradual",
            {"freeze__every": 1},
            0,
            [(False, False, False), (False, False, True), (False, True, True), (True,) * 3],
        ),
        (
            "gradual",
            {"freeze__every": 2},
            1,
            [(False, False, False)] * 2 + [(False, False, True)] * 2,
        ),
        ("gradual", {}, "all", [(False, False, False)] * 4),
        ("lp_ft", {"freeze__probe_epochs": 2}, 1, [(False,) * 3] * 2 + [(False, True, True)] * 2),
        ("lp_ft", {"freeze__probe_epochs": 0}, 0, [(True,) * 3] * 4),
    ],
)
def test_which_groups_train_at_each_epoch(digits, fast, policy, params, depth, expected):
    _, rec = fit_recorded(digits, fast, freeze=policy, frozen_depth=depth, **params)
    assert rec.trainable == expected
    # weights move exactly in the groups that train; the head always trains
    assert [moved[:-1] for moved in rec.moved] == expected
    assert all(moved[-1] for moved in rec.moved)


def test_unfreezing_keeps_the_optimizer_and_its_state(digits, fast):
    clf, rec = fit_recorded(digits, fast, freeze="gradual", frozen_depth=0)
    assert len(set(rec.optimizers)) == 1  # built once, never replaced by hand
    steps_per_epoch = int(np.ceil(len(digits[0]) / fast["batch_size"]))
    state = clf.optimizer_.state
    head_weight = clf.module_.head.weight
    assert int(state[head_weight]["step"]) == 4 * steps_per_epoch  # trained from epoch 0 on
    # block3 unfroze at epoch 1, block1 at epoch 3: Adam state counts their steps only
    block3 = next(clf.module_.groups[2].parameters())
    block1 = next(clf.module_.groups[0].parameters())
    assert int(state[block3]["step"]) == 3 * steps_per_epoch
    assert int(state[block1]["step"]) == 1 * steps_per_epoch


def test_frozen_weights_and_batchnorm_statistics_do_not_move(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": 2, "feature_cache": False}).fit(X, y)
    first = {k: v.clone() for k, v in clf.module_.groups[:2].state_dict().items()}
    clf.partial_fit(X, y)
    clf.partial_fit(X, y)
    after = clf.module_.groups[:2].state_dict()
    assert any("running_mean" in k for k in first)
    for key, value in first.items():
        assert torch.equal(value, after[key]), key
    # the trained group's statistics do move
    bn3 = [m for m in clf.module_.groups[2].modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before3 = bn3.running_mean.clone()
    clf.partial_fit(X, y)
    assert not torch.equal(before3, bn3.running_mean)


def test_bn_train_lets_frozen_statistics_move_but_not_weights(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": 2, "freeze__bn": "train"}).fit(X, y)
    bn1 = [m for m in clf.module_.groups[0].modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    mean, weight = bn1.running_mean.clone(), bn1.weight.clone()
    clf.partial_fit(X, y)
    assert not torch.equal(mean, bn1.running_mean)
    assert torch.equal(weight, bn1.weight)


def test_frozen_groups_compute_no_gradients(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "frozen_depth": 2, "max_epochs": 1}).fit(X, y)
    needs_grad = []
    hooks = [
        g.register_forward_hook(lambda m, i, o: needs_grad.append(o.requires_grad))
        for g in clf.module_.groups
    ]
    clf.set_params(feature_cache=False)
    clf.partial_fit(X, y)
    for h in hooks:
        h.remove()
    per_batch = np.array(needs_grad).reshape(-1, 3)
    assert not per_batch[:, :2].any() and per_batch[:, 2].all()
    for group in clf.module_.groups[:2]:
        assert all(p.grad is None for p in group.parameters())


@pytest.mark.parametrize("policy", ["depth", "gradual", "lp_ft"])
def test_layerwise_lr_decay(digits, fast, policy):
    _, rec = fit_recorded(
        digits, fast, lr=0.01, freeze=policy, frozen_depth=0, freeze__lr_decay=0.5
    )
    expected = {"head": 0.01, "block3": 0.005, "block2": 0.0025, "block1": 0.00125}
    for lrs in rec.lrs:
        assert lrs == pytest.approx(expected)


def test_lr_decay_default_is_off(digits, fast):
    _, rec = fit_recorded(digits, fast, lr=0.02, frozen_depth=0)
    assert set(rec.lrs[0].values()) == {0.02}


def test_lr_factor_changes_mid_fit_are_applied(digits, fast):
    """A third-party policy may change factors between epochs; lrs follow them."""

    class Warm(DepthFreezer):
        def __call__(self, groups, frozen_depth, epoch):
            state = super().__call__(groups, frozen_depth, epoch)
            return type(state)(state.trainable, state.eval_mode, (0.1 * (epoch + 1),) * 3)

    class Plugin:
        @hookimpl
        def register_freezers(self, register):
            register("warm", Warm)

    X, y = digits
    rec = EpochRecorder()
    clf = FineTunedClassifier(
        **{**fast, "max_epochs": 3, "lr": 1.0}, freeze="warm", callbacks=[rec]
    )
    pm.register(Plugin(), "warm-test")
    try:
        clf.fit(X, y)
    finally:
        pm.unregister(name="warm-test")
    assert [lrs["block1"] for lrs in rec.lrs] == pytest.approx([0.1, 0.2, 0.3])
    assert [lrs["head"] for lrs in rec.lrs] == [1.0] * 3


def test_policy_parameters_are_searchable(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "freeze": "gradual", "feature_cache": False})
    grid = {"freeze__every": [1, 2], "freeze__lr_decay": [0.5, 1.0]}
    search = GridSearchCV(clf, grid, cv=2).fit(X, y)
    assert set(search.best_params_) == {"freeze__every", "freeze__lr_decay"}
    best = search.best_estimator_
    assert best.freeze_policy_.every == search.best_params_["freeze__every"]
    assert clone(clf).get_params()["freeze"] == "gradual"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"freeze__every": 0}, r"freeze__every must be an int in the range \[1, inf\), got 0"),
        ({"freeze__every": True}, r"freeze__every must be an int in the range \[1, inf\)"),
        ({"freeze__lr_decay": 0.0}, r"freeze__lr_decay must be a float in the range \(0.0, 1.0\]"),
        ({"freeze__lr_decay": 1.5}, r"freeze__lr_decay must be a float in the range \(0.0, 1.0\]"),
        ({"freeze__bn": "frozen"}, r"freeze__bn must be a str among \{'(eval|train)', '"),
    ],
)
def test_bad_policy_parameters(digits, fast, params, message):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        FineTunedClassifier(**{**fast, "freeze": "gradual"}, **params).fit(X, y)


def test_unknown_policy_and_parameter(digits, fast):
    X, y = digits
    with pytest.raises(UnknownNameError, match="gradual"):
        FineTunedClassifier(**{**fast, "freeze": "gradul"}).fit(X, y)
    with pytest.raises(TypeError, match="freeze__probe_epochs"):
        FineTunedClassifier(**{**fast, "freeze": "gradual"}, freeze__probe_epochs=2).fit(X, y)


def test_policies_as_pure_functions():
    assert GradualFreezer(every=3).depth_at(5, 1, 0) == 5
    assert GradualFreezer(every=3).depth_at(5, 1, 3) == 4
    assert GradualFreezer(every=3).depth_at(5, 1, 100) == 1
    assert LinearProbeFineTune(probe_epochs=1).depth_at(5, 2, 0) == 5
    assert LinearProbeFineTune(probe_epochs=1).depth_at(5, 2, 1) == 2
    state = DepthFreezer(lr_decay=0.5)(("a", "b"), 1, 0)
    assert state.trainable == (False, True)
    assert state.eval_mode == (True, False)
    assert state.lr_factors == (0.25, 0.5)
    assert "every=2" in repr(GradualFreezer(every=2))


def test_policies_offer_search_spaces():
    """The plugin that registers the policies contributes their parameters through its hook."""
    pytest.importorskip("optuna")
    from optuna.distributions import FloatDistribution, IntDistribution

    def space(freeze):
        return builtin_freezers.search_space(FineTunedClassifier(max_epochs=6, freeze=freeze))

    assert isinstance(space("depth")["freeze__lr_decay"], FloatDistribution)
    assert isinstance(space("gradual")["freeze__every"], IntDistribution)
    probe = space("lp_ft")["freeze__probe_epochs"]
    assert (probe.low, probe.high) == (0, 3)
    assert space("lpft") == space("lp_ft")  # aliases too
    assert set(space("depth")) == {"freeze__lr_decay"}
    assert not any(hasattr(cls, "search_space") for cls in (DepthFreezer, GradualFreezer))


class Halves(FreezePolicy):
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, groups, frozen_depth, epoch):
        return DepthFreezer()(groups, frozen_depth, epoch)


class HalvesPlugin:
    @hookimpl
    def register_freezers(self, register):
        register("halves", Halves)
        register("broken", lambda: "not a policy")


@pytest.fixture
def halves():
    plugin = HalvesPlugin()
    pm.register(plugin, "halves")
    try:
        yield
    finally:
        pm.unregister(plugin)


def test_build_freezer(halves):
    policy = build_freezer("gradual", {"every": 2})
    assert isinstance(policy, GradualFreezer) and isinstance(policy, FreezePolicy)
    assert policy.every == 2
    assert isinstance(build_freezer("lpft", {}), LinearProbeFineTune)
    assert build_freezer("halves", {"scale": 0.5}).scale == 0.5
    with pytest.raises(UnknownNameError, match="Did you mean 'gradual'"):
        build_freezer("gradul", {})
    with pytest.raises(TypeError, match=r"freeze='gradual' .*\(freeze__probe_epochs\)"):
        build_freezer("gradual", {"probe_epochs": 2})
    with pytest.raises(TypeError, match="returned str, not a callable"):
        build_freezer("broken", {})
    # a third-party policy the built-in plugin did not register: no entries from it
    assert builtin_freezers.search_space(FineTunedClassifier(freeze="halves")) is None
