"""Adapter policies (``freeze="lora" | "loha" | "ia3" | "bitfit"``): what trains, frozen
depth, the cache, merging before export, search, and the errors before training."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from torch import nn

from skft import FineTunedClassifier, FineTunedRegressor, freezers, hookimpl
from skft.params.plan import DataProfile, plan_fit
from skft.plugins import get_backbone, pm
from skft.search.space import default_search_space
from skft.specs import BackboneParts, BackboneSpec
from skft.training.cache import cache_depth, feature_cache

pytest.importorskip("peft")

ADAPTERS = ("lora", "loha", "ia3", "bitfit")
MARKERS = {"lora": "lora_", "loha": "hada_", "ia3": "ia3_", "bitfit": "bias"}


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def mlp(**params):
    base = dict(
        backbone="mlp", pretrained=False, max_epochs=2, batch_size=16, verbose=0, augment="none"
    )
    return FineTunedClassifier(**{**base, "random_state": 0, **params})


def trainable(module: nn.Module) -> dict[str, int]:
    return {n: p.numel() for n, p in module.named_parameters() if p.requires_grad}


def test_adapter_policies_are_registered():
    assert set(ADAPTERS) <= set(freezers().names())


@pytest.mark.parametrize("r", [1, 4])
def test_lora_trains_rank_r_updates_and_the_head(tabular, r):
    """mlp: block2 is Linear(64, 64); LoRA of rank r adds r * (64 + 64); the head 64 * 2 + 2."""
    clf = mlp(freeze="lora", frozen_depth=1, freeze__r=r).fit(*tabular)
    counts = trainable(clf.module_)
    assert sum(counts.values()) == r * (64 + 64) + 64 * 2 + 2
    assert all(n.startswith(("groups.1.", "head.")) for n in counts)
    assert all("lora_" in n for n in counts if n.startswith("groups."))


@pytest.mark.parametrize("freeze", ADAPTERS)
def test_only_adapters_and_head_move_and_frozen_groups_get_none(digits, fast, freeze):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze=freeze, frozen_depth=1).fit(X, y)
    before = {n: p.detach().clone() for n, p in clf.module_.named_parameters()}
    clf.partial_fit(X, y)
    marker = MARKERS[freeze]
    moved = {n for n, p in clf.module_.named_parameters() if not torch.equal(p, before[n])}
    assert moved, "nothing trained"
    assert {n for n in moved if n.startswith("head.")}, "the head always trains"
    for name in moved - {n for n in moved if n.startswith("head.")}:
        assert name.startswith(("groups.1.", "groups.2.")), name  # below the depth: frozen
        assert marker in name, name  # only the adapter's parameters (BitFit: biases)
    # no adapter layers below frozen_depth; some above
    group0 = [n for n, _ in clf.module_.groups[0].named_parameters()]
    assert not any(MARKERS[f] in n for f in ("lora", "loha", "ia3") for n in group0)
    if freeze != "bitfit":
        assert any(marker in n for n, _ in clf.module_.groups[2].named_parameters())


@pytest.mark.parametrize("depth", [0, 2])
def test_frozen_prefix_cache_applies_below_the_first_adapted_group(digits, fast, depth):
    X, y = digits
    settings = {**fast, "augment": "none", "freeze": "lora", "frozen_depth": depth}
    clf = FineTunedClassifier(**settings).fit(X, y)
    assert cache_depth(clf, 0, 2) == depth
    feature_cache.clear()
    clf.partial_fit(X, y)
    assert (feature_cache.stats.lookups > 0) == (depth > 0)


def test_default_frozen_depth_adapts_every_group():
    """The plan's linear probe ("all") would leave the adapters nothing: 0 instead."""
    spec = get_backbone("resnet18")
    profile = DataProfile("image", 200, 2, 100, 3, 224)
    probe = plan_fit(spec, profile, {"freeze": "depth", "frozen_depth": None})
    lora = plan_fit(spec, profile, {"freeze": "lora", "frozen_depth": None})
    assert probe.values["frozen_depth"] == "all"
    assert lora.values["frozen_depth"] == 0
    assert "lora" in lora.reasons["frozen_depth"]
    kept = plan_fit(spec, profile, {"freeze": "lora", "frozen_depth": 3})
    assert kept.values["frozen_depth"] == 3


def test_target_picks_layer_kinds_and_names(digits, fast):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze="lora", freeze__target="block3").fit(X, y)
    adapted = {n.split(".")[1] for n in trainable(clf.module_) if n.startswith("groups.")}
    assert adapted == {"2"}
    # smallcnn has no Linear layer: "linear" alone names nothing
    with pytest.raises(ValueError, match="names no layer"):
        FineTunedClassifier(**fast, freeze="lora", freeze__target="linear").fit(X, y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"freeze__r": 0}, r"freeze__r must be an int in the range \[1, inf\), got 0"),
        ({"freeze__r": 2.5}, r"freeze__r must be an int in the range \[1, inf\), got 2.5"),
        ({"freeze__alpha": 0}, r"freeze__alpha must be a float in the range \(0.0, inf\)"),
        ({"freeze__dropout": 1.0}, r"freeze__dropout must be a float in the range \[0.0, 1.0\)"),
        ({"freeze__alpha": -1.0}, "freeze__alpha"),
        ({"freeze__target": "no_such_layer"}, "names no layer"),
        ({"freeze__target": "("}, "neither a layer kind"),
        ({"freeze__target": []}, "freeze__target"),
        ({"frozen_depth": "all"}, "no layer to adapt"),
    ],
)
def test_bad_adapter_settings_fail_before_training(digits, fast, params, match):
    X, y = digits
    epochs = []

    from skorch.callbacks import Callback

    class Count(Callback):
        def on_epoch_begin(self, net, **kwargs):
            epochs.append(1)

    clf = FineTunedClassifier(**{**fast, "freeze": "lora", **params}, callbacks=[Count()])
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not epochs


def _build_no_layers(pretrained, input_shape):
    channels = input_shape[0]
    groups = [
        ("pool", nn.Sequential(nn.AvgPool2d(2), nn.ReLU())),
        ("norm", nn.BatchNorm2d(channels)),
    ]
    neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return BackboneParts(groups=groups, neck=neck, feature_dim=channels)


class NoLayersPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(
            BackboneSpec(
                name="test-no-layers",
                build=_build_no_layers,
                has_pretrained=False,
                default_image_size=16,
            )  # fmt: skip
        )


def test_adapter_on_a_backbone_without_adaptable_layers_is_refused(digits):
    X, y = digits
    plugin = NoLayersPlugin()
    pm.register(plugin, "test-no-layers")
    try:
        settings = dict(backbone="test-no-layers", pretrained=False, max_epochs=1, verbose=0)
        with pytest.raises(ValueError, match="no layer to adapt"):
            FineTunedClassifier(**settings, freeze="lora").fit(X, y)
        # BitFit: the BatchNorm bias is there to train
        FineTunedClassifier(**settings, freeze="bitfit").fit(X, y)
    finally:
        pm.unregister(plugin)


def test_adapters_with_every_group_frozen_are_refused(tabular):
    for freeze, match in [("bitfit", "no bias to train"), ("lora", "no layer to adapt")]:
        with pytest.raises(ValueError, match=match):
            mlp(freeze=freeze, frozen_depth=2).fit(*tabular)


@pytest.mark.parametrize("freeze", ["lora", "loha", "ia3"])
def test_merge_keeps_predictions_and_leaves_plain_layers(digits, fast, freeze):
    X, y = digits
    clf = FineTunedClassifier(**fast, freeze=freeze, frozen_depth=1, lr=0.05).fit(X, y)
    before = clf.predict_proba(X)
    clf.merge_adapters()
    assert not any(MARKERS[freeze] in n for n, _ in clf.module_.named_parameters())
    np.testing.assert_allclose(clf.predict_proba(X), before, atol=1e-5)
    assert clf.freeze == "depth" and clf.get_params()["freeze__bn"] == "eval"
    clf.partial_fit(X, y)  # trains on as a depth fine-tune
    assert any(p.requires_grad for p in clf.module_.groups[1].parameters())


def test_onnx_export_sees_the_merged_network(digits, fast, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    X, y = digits
    clf = FineTunedClassifier(**fast, freeze="lora", freeze__r=2, lr=0.05).fit(X, y)
    for name, p in clf.module_.named_parameters():  # a LoRA update that changes outputs
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.2)
    path = clf.to_onnx(tmp_path / "m.onnx")
    names = [init.name for init in onnx.load(str(path)).graph.initializer]
    assert not any("lora" in n for n in names)
    assert any("lora" in n for n, _ in clf.module_.named_parameters())  # the estimator's own
    from skft.data.adapters import adapt_input, as_float_images

    batch = adapt_input(clf, X, fitting=False)
    with torch.no_grad():
        expected = clf.module_.eval()(batch).numpy()
    session = ort.InferenceSession(str(path))
    got = session.run(None, {"x": as_float_images(batch).numpy().astype(np.float32)})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_compressed_prunes_the_merged_network(digits, fast):
    from skft import Compressed

    X, y = digits
    clf = FineTunedClassifier(**fast, freeze="lora", frozen_depth=1).fit(X, y)
    comp = Compressed(clf, prefit=True, prune=0.25, recover_epochs=1).fit(X, y)
    assert comp.estimator_.freeze == "depth"
    assert not any("lora_" in n for n, _ in comp.estimator_.module_.named_parameters())
    assert comp.compression_report_["params_after"] < comp.compression_report_["params_before"]
    assert any("lora_" in n for n, _ in clf.module_.named_parameters())  # the original kept
    assert comp.predict(X).shape == (len(X),)


def test_grid_search_over_the_rank(tabular):
    search = GridSearchCV(mlp(freeze="lora", frozen_depth=1), {"freeze__r": [1, 3]}, cv=2)
    search.fit(*tabular)
    assert [p["freeze__r"] for p in search.cv_results_["params"]] == [1, 3]
    r = search.best_params_["freeze__r"]
    counts = trainable(search.best_estimator_.module_)
    assert sum(counts.values()) == r * 128 + 130


def test_default_search_space_offers_the_adapter_parameters():
    space = default_search_space(mlp(freeze="lora"))
    assert {"freeze__r", "freeze__alpha", "freeze__dropout", "freeze__probe_epochs"} <= set(space)
    assert "all" not in space["frozen_depth"].choices  # nothing to adapt there
    assert "freeze__r" not in default_search_space(mlp(freeze="bitfit"))
    assert "all" in default_search_space(mlp(freeze="depth"))["frozen_depth"].choices


def test_clone_and_pickle_keep_the_adapters(tabular):
    clf = mlp(freeze="lora", freeze__r=2, frozen_depth=1).fit(*tabular)
    assert clone(clf).get_params()["freeze__r"] == 2
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(tabular[0]), clf.predict_proba(tabular[0]))
    assert sum(trainable(again.module_).values()) == sum(trainable(clf.module_).values())


def test_regressor_takes_adapters(tabular):
    X, _ = tabular
    reg = FineTunedRegressor(
        backbone="mlp", pretrained=False, freeze="lora", max_epochs=1, verbose=0, augment="none"
    ).fit(X, X[:, 0])
    assert reg.predict(X).shape == (len(X),)


@pytest.mark.slow
def test_lora_on_a_torchvision_backbone_exports_and_saves_small(tmp_path):
    """resnet18 from a weights file (a known checkpoint): adapters after frozen_depth only,
    export_backbone merges them, save leaves the base out."""
    import torchvision

    import skft

    torch.manual_seed(0)
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), np.arange(16) % 2
    clf = FineTunedClassifier(
        "resnet18", pretrained=str(weights), freeze="lora", frozen_depth=3, image_size=32,
        max_epochs=1, batch_size=8, augment="none", verbose=0, random_state=0,
    ).fit(X, y)  # fmt: skip
    adapted = {n.split(".")[1] for n in trainable(clf.module_) if n.startswith("groups.")}
    assert adapted == {"3", "4"}  # layer3, layer4 of stem, layer1..layer4
    for name, p in clf.module_.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    backbone = clf.export_backbone()
    assert not any("lora" in n for n in backbone.state_dict())
    batch = torch.rand(2, 3, 32, 32)
    module = clf.module_.eval()
    with torch.no_grad():
        x = module.preprocess(batch)
        for group in module.groups:
            x = group(x)
        np.testing.assert_allclose(backbone(module.preprocess(batch)), module.neck(x), atol=1e-5)
    small = clf.save(tmp_path / "small.skft")
    full = clf.save(tmp_path / "full.skft", adapter_only=False)
    size = lambda f: (f / "weights.safetensors").stat().st_size  # noqa: E731
    assert size(small) < size(full) / 5
    np.testing.assert_allclose(skft.load(small).predict_proba(X), clf.predict_proba(X), atol=1e-5)


class AdapterSnapshots(Callback):
    """The network's parameters when training starts and at the end of every epoch."""

    def initialize(self):
        self.start, self.epochs = None, []
        return self

    def _copy(self, net):
        return {n: p.detach().clone() for n, p in net.module_.named_parameters()}

    def on_train_begin(self, net, **kwargs):
        self.start = self._copy(net)

    def on_epoch_end(self, net, **kwargs):
        self.epochs.append(self._copy(net))


@pytest.mark.parametrize("policy", ["lora", "bitfit"])
def test_probe_epochs_train_the_head_before_the_adapters(tabular, policy):
    snaps = AdapterSnapshots()
    clf = mlp(freeze=policy, frozen_depth=1, freeze__probe_epochs=2, max_epochs=4, lr=1e-2)
    clf.set_params(callbacks=[snaps]).fit(*tabular)
    start, marker = snaps.start, MARKERS[policy]
    adapters = [n for n in start if n.startswith("groups.1.") and marker in n]
    assert adapters
    for epoch in (0, 1):  # the head alone trained
        assert all(torch.equal(snaps.epochs[epoch][n], start[n]) for n in adapters)
    assert not torch.equal(snaps.epochs[1]["head.weight"], snaps.epochs[0]["head.weight"])
    assert any(not torch.equal(snaps.epochs[3][n], start[n]) for n in adapters)
    assert clf.freeze_policy_.probe_epochs == 2 and "probe_epochs=2" in repr(clf.freeze_policy_)
    with pytest.raises(ValueError, match=r"freeze__probe_epochs must be an int"):
        mlp(freeze=policy, freeze__probe_epochs=-1).fit(*tabular)
