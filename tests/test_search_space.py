"""skft.search.space: the plugin-driven default search space, per backbone and augmenter."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import skft
from skft import BackboneSpec, FineTunedClassifier, OptunaSearch, hookimpl
from skft.builtin.search_space import layer_group_count
from skft.plugins import pm
from skft.search.space import chosen_augmenters, default_search_space, merge_search_space

optuna.logging.set_verbosity(optuna.logging.WARNING)




@pytest.fixture
def clf(fast):
    return FineTunedClassifier(**fast)



@pytest.mark.parametrize("backbone", ["smallcnn", "mlp", "resnet18", "mobilenet_v3_small"])
def test_default_space_per_backbone(backbone):
    est = FineTunedClassifier(backbone, pretrained=False)
    space = default_search_space(est)
    assert space["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    n_groups = len(
        skft.get_backbone(backbone).build(False, (3, 64, 64) if backbone != "mlp" else (4,)).groups
    )
    assert layer_group_count(skft.get_backbone(backbone)) == n_groups
    assert space["frozen_depth"].choices == (*range(n_groups), "all")
    assert space["augment_strength"] == FloatDistribution(0.0, 1.0)
    assert "augment_strength" not in default_search_space(est.set_params(augment="none"))


def test_group_counts_differ_between_backbones():
    counts = {b: layer_group_count(skft.get_backbone(b)) for b in ("smallcnn", "mlp", "resnet18")}
    assert counts == {"smallcnn": 3, "mlp": 2, "resnet18": 5}


def _build_fails(pretrained, input_shape):
    raise AssertionError("built although the spec declares n_groups")


def test_layer_group_count_reads_the_declared_field_only():
    declared = BackboneSpec(name="declared-7", build=_build_fails, n_groups=7)
    assert layer_group_count(declared) == 7  # not built
    # ``extra`` is free-form metadata: never read for behaviour
    mlp = skft.get_backbone("mlp")
    extra_only = BackboneSpec(
        name="extra-only", build=mlp.build, input_kind="tabular", extra={"n_groups": 7}
    )
    assert layer_group_count(extra_only) == 2


@pytest.mark.parametrize(
    ("augment", "prefixes", "num_ops"),
    [
        ("basic+mixup", ["augment__basic__", "augment__mixup__"], []),
        (["basic", "mixup"], ["augment__basic__", "augment__mixup__"], []),
        (
            "basic+randaugment",
            ["augment__basic__", "augment__randaugment__"],
            ["augment__randaugment__num_ops"],
        ),
        (["rand"], ["augment__rand__"], ["augment__rand__num_ops"]),
        ("randaugment", ["augment__"], ["augment__num_ops"]),
    ],
)
def test_default_space_for_composed_augment(augment, prefixes, num_ops):
    """Regression: a composition was looked up as one augmenter name."""
    est = FineTunedClassifier("smallcnn", pretrained=False, augment=augment)
    assert [prefix for prefix, _ in chosen_augmenters(est)] == prefixes
    space = default_search_space(est)
    assert space["augment_strength"] == FloatDistribution(0.0, 1.0)
    assert {"lr", "frozen_depth", "freeze__lr_decay"} <= set(space)
    assert [k for k in space if k.endswith("num_ops")] == num_ops
    assert "augment_strength" not in default_search_space(est.set_params(augment="none+none"))


def test_search_with_composed_augment_reaches_the_components(fast, digits):
    X, y = digits
    est = FineTunedClassifier(**{**fast, "max_epochs": 1}, augment="basic+randaugment")
    search = OptunaSearch(est, {"freeze__lr_decay": None}, n_trials=2, cv=2, random_state=0).fit(
        X, y
    )
    assert "augment__randaugment__num_ops" in search.best_params_
    _, randaugment = search.best_estimator_.augmenter_.augmenters
    assert randaugment.num_ops == search.best_params_["augment__randaugment__num_ops"]


def test_param_distributions_override_and_extend(clf):
    space = merge_search_space(
        clf,
        {
            "lr": FloatDistribution(1e-3, 1e-2, log=True),
            "batch_size": [8, 16],
            "augment_strength": None,
        },
    )
    assert space["lr"] == FloatDistribution(1e-3, 1e-2, log=True)
    assert space["batch_size"] == CategoricalDistribution([8, 16])
    assert "augment_strength" not in space and "frozen_depth" in space
    with pytest.raises(TypeError, match="optuna distribution"):
        merge_search_space(clf, {"lr": 0.1})


def test_non_skft_estimator_needs_param_distributions(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    with pytest.raises(ValueError, match="search space .* is empty"):
        OptunaSearch(LogisticRegression(), n_trials=1).fit(X.reshape(60, -1), y)
    search = OptunaSearch(
        LogisticRegression(max_iter=200),
        {"C": FloatDistribution(0.01, 10, log=True)},
        n_trials=3,
        cv=2,
        random_state=0,
    ).fit(X.reshape(60, -1), y)
    assert set(search.best_params_) == {"C"} and search.score(X.reshape(60, -1), y) > 0.8


class MagnitudeAugment:
    """A third-party augmenter with its own parameter and search space."""

    input_kinds = ("image",)
    seen: list[int] = []

    def __init__(self, magnitude: int = 1) -> None:
        self.magnitude = magnitude
        MagnitudeAugment.seen.append(magnitude)

    def __call__(self, X, strength, generator):
        return X


class ThirdParty:
    @hookimpl
    def register_augmenters(self, register):
        register("magnitude", MagnitudeAugment)

    @hookimpl
    def search_space(self, estimator):
        params = estimator.get_params(deep=False)
        if "backbone" not in params:
            return None
        space = {
            "batch_size": CategoricalDistribution([8, 16]),
            "lr": FloatDistribution(1e-4, 1e-2, log=True),  # refines the core's range
        }
        for prefix, factory in chosen_augmenters(estimator):  # the augmenter it registered
            if factory is MagnitudeAugment:
                space[prefix + "magnitude"] = IntDistribution(1, 9)
        return space


@pytest.fixture
def third_party():
    plugin = ThirdParty()
    skft.plugins.load_plugins()
    pm.register(plugin, "third-party-search")
    MagnitudeAugment.seen = []
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_third_party_plugin_parameters_in_default_space(third_party, fast, digits):
    X, y = digits
    est = FineTunedClassifier(**{**fast, "augment": "magnitude", "augment_strength": 0.5})
    space = default_search_space(est)
    assert space["batch_size"] == CategoricalDistribution([8, 16])  # the plugin's hook
    assert space["augment__magnitude"] == IntDistribution(1, 9)  # for the augmenter it registered
    assert space["lr"] == FloatDistribution(1e-4, 1e-2, log=True)  # later plugin wins
    search = OptunaSearch(est, n_trials=2, cv=2, random_state=0).fit(X, y)
    for trial in search.study_.trials:
        assert {"batch_size", "augment__magnitude"} <= set(trial.params)
        assert trial.params["augment__magnitude"] in MagnitudeAugment.seen  # reached the factory
    pm.unregister(third_party)
    assert "augment__magnitude" not in default_search_space(FineTunedClassifier(**fast))
    pm.register(third_party, "third-party-search")


