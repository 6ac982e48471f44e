"""Text fine-tuning through skft (CPU, offline, a tiny random BERT unless said otherwise)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import skft
import torch
from skft import FineTunedClassifier, FineTunedRegressor
from skft.training.cache import feature_cache
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skft_transformers import TEXT_DEFAULTS, _model
from skft_transformers._text import adapt_text

# --------------------------------------------------------------------------
# estimators on text
# --------------------------------------------------------------------------


def test_classifier_on_text_with_string_labels(fast, texts):
    X, y = texts
    clf = FineTunedClassifier(**{**fast, "max_epochs": 4}).fit(X, y)
    assert list(clf.classes_) == ["ham", "spam"]
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"ham", "spam"}
    assert clf.score(X, y) > 0.8  # separable words; chance is 0.5
    proba = clf.predict_proba(["free cash now", "see you at home"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    assert clf.module_.group_names == ["embeddings", "layer0", "layer1"]


@pytest.mark.parametrize("container", [list, tuple, np.array, "series"])
def test_containers_give_the_same_predictions(fast, texts, container):
    X, y = texts
    clf = FineTunedClassifier(**fast).fit(X, y)
    if container == "series":
        pd = pytest.importorskip("pandas")
        Xc = pd.Series(X)
    else:
        Xc = container(X)
    np.testing.assert_allclose(clf.predict_proba(Xc), clf.predict_proba(X), atol=1e-6)


def test_regressor_on_text(fast, texts):
    X, _ = texts
    y = np.array([len(t.split()) for t in X], dtype=float)
    reg = FineTunedRegressor(**{**fast, "max_epochs": 3}).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()


def test_clone_and_pickle(fast, texts):
    X, y = texts
    clf = FineTunedClassifier(**fast).fit(X, y)
    twin = clone(clf)
    assert twin.get_params()["backbone"] == clf.backbone and not hasattr(twin, "module_")
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    model = clf.export_backbone()  # the tuned encoder as a transformers BertModel
    assert type(model).__name__ == "BertModel"
    tuned = clf.module_.groups[1].layer.attention.self.query.weight
    torch.testing.assert_close(model.encoder.layer[0].attention.self.query.weight, tuned)


def test_grid_search_over_frozen_depth_and_strength(fast, texts):
    X, y = texts
    est = FineTunedClassifier(**{**fast, "max_epochs": 1}, augment="eda")
    grid = {"frozen_depth": [1, "all"], "augment_strength": [0.0, 0.5]}
    search = GridSearchCV(est, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_frozen_layers_do_not_change(fast, texts):
    X, y = texts
    clf = FineTunedClassifier(**{**fast, "frozen_depth": 2, "lr": 1e-2, "feature_cache": False})
    clf.initialize_module = _record_initial(clf.initialize_module, clf)
    clf.fit(X, y)
    for name, group in zip(clf.module_.group_names, clf.module_.groups):
        before = clf.initial_[name]
        changed = any(not torch.equal(p, before[k]) for k, p in group.state_dict().items())
        assert changed == (name == "layer1"), name


def _record_initial(initialize_module, net):
    def wrapped():
        out = initialize_module()
        net.initial_ = {
            name: {k: v.clone() for k, v in g.state_dict().items()}
            for name, g in zip(net.module_.group_names, net.module_.groups)
        }
        return out

    return wrapped


def test_cache_hits_equal_predictions_without_cache(fast, texts):
    X, y = texts
    feature_cache.clear()
    probe = dict(fast, frozen_depth="all", max_epochs=3)
    on = FineTunedClassifier(**probe, feature_cache=True).fit(X, y)
    assert feature_cache.stats.misses == len(set(X))  # one forward pass through the encoder
    misses = feature_cache.stats.misses
    again = FineTunedClassifier(**probe, feature_cache=True).fit(X, y)
    assert feature_cache.stats.misses == misses and feature_cache.stats.hits >= len(X)
    off = FineTunedClassifier(**probe, feature_cache=False).fit(X, y)
    for est in (on, again):
        np.testing.assert_allclose(est.predict_proba(X), off.predict_proba(X), atol=1e-5)
    partial = dict(fast, frozen_depth=2, max_epochs=2)
    a = FineTunedClassifier(**partial, feature_cache=True).fit(X, y)
    b = FineTunedClassifier(**partial, feature_cache=False).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)


def test_cls_pooling_is_selectable(fast, texts):
    X, y = texts
    clf = FineTunedClassifier(**{**fast, "backbone": fast["backbone"] + "@cls"}).fit(X, y)
    assert clf.module_.neck.mode == "cls"
    with pytest.raises(ValueError, match="unknown pooling"):
        FineTunedClassifier(**{**fast, "backbone": fast["backbone"] + "@max"}).fit(X, y)


# --------------------------------------------------------------------------
# tokenisation and dynamic padding
# --------------------------------------------------------------------------


def test_batches_are_padded_to_their_own_longest_text(fast, texts):
    X, y = texts
    X = ["ok"] * 8 + [" ".join(["free"] * 20)] * 8  # batches of short and of long texts
    y = ["ham"] * 8 + ["spam"] * 8
    seen: list[tuple[int, int]] = []
    settings = {**fast, "max_epochs": 1, "batch_size": 8}
    clf = FineTunedClassifier(**settings, iterator_train__shuffle=False)
    clf.initialize_module = _hook_lengths(clf.initialize_module, clf, seen)
    clf.fit(X, y)
    assert clf.input_shape_[-1] == 22  # [CLS] 20 words [SEP]: the data's longest
    lengths = sorted({n for n, _ in seen})
    assert lengths == [3, 22]  # [CLS] ok [SEP] in the short batch, not padded to 22


def _hook_lengths(initialize_module, net, seen):
    def wrapped():
        out = initialize_module()
        for group in net.module_.groups[1:]:
            group.layer.register_forward_hook(
                lambda mod, args, res: seen.append((args[0].shape[1], args[0].shape[0]))
            )
        return out

    return wrapped


def test_max_length_truncates_and_warns_once(tiny_bert):
    long = " ".join(["free"] * 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = adapt_text([long, long, "ok"], tiny_bert, max_length=8)
    assert out.shape[-1] == 8 and out.dtype == torch.int32
    msgs = [str(w.message) for w in caught if "truncated" in str(w.message)]
    assert len(msgs) == 1 and "2 of 3 texts" in msgs[0]
    assert out[2, 1].sum() == 3  # [CLS] ok [SEP]


# --------------------------------------------------------------------------
# bad input: clear errors before any work
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, error, match",
    [
        (["hello", None], TypeError, "X\\[1\\] is NoneType"),
        (["hello", 3], TypeError, "X\\[1\\] is int"),
        (["hello", b"bytes"], TypeError, "X\\[1\\] is bytes"),
        (np.array([["a", "b"], ["c", "d"]]), ValueError, "2-D array of strings"),
        ([], ValueError, "empty"),
        (np.zeros((4, 8, 8), dtype=np.uint8), TypeError, "image arrays given to a text backbone"),
        ("just one string", TypeError, "collection of strings"),
    ],
)
def test_bad_text_input(fast, X, error, match, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before the input was checked")

    monkeypatch.setattr(_model, "build_encoder", no_build)
    with pytest.raises(error, match=match):
        FineTunedClassifier(**fast).fit(X, ["a", "b", "a", "b"][: len(X)] or ["a"])


def test_bad_max_length(fast, texts):
    X, y = texts
    with pytest.raises(ValueError, match="max_length must be"):
        FineTunedClassifier(**fast, max_length=1).fit(X, y)


def test_strings_to_an_image_backbone():
    with pytest.raises(ValueError, match="strings given to an image backbone; use a text backbone"):
        FineTunedClassifier("smallcnn", pretrained=False).fit(["free cash", "hello"], [0, 1])


def test_image_augmenter_on_text_is_refused(fast, texts):
    X, y = texts
    with pytest.raises(ValueError, match="works on image input"):
        FineTunedClassifier(**fast, augment="basic").fit(X, y)


# --------------------------------------------------------------------------
# training defaults declared by the backbone
# --------------------------------------------------------------------------


def test_text_backbones_bring_their_training_defaults(fast, texts):
    X, y = texts
    settings = {k: v for k, v in fast.items() if k not in ("lr", "batch_size", "max_epochs")}
    clf = FineTunedClassifier(**settings, max_epochs=1).fit(X, y)  # freeze="depth": no stage
    assert clf.lr is None and clf.batch_size is None and clf.augment is None  # params unchanged
    assert clf.lr_schedule is None and TEXT_DEFAULTS["lr_schedule"] == "linear"
    groups = clf.optimizer_.param_groups
    assert all(0 < g["schedule_factor"] < 1 for g in groups)  # the linear schedule ran
    rates = {g["name"]: g["lr"] / g["schedule_factor"] for g in groups}  # the base rates
    assert rates["layer0"] == pytest.approx(TEXT_DEFAULTS["lr"])
    assert rates["head"] == pytest.approx(TEXT_DEFAULTS["lr"] * TEXT_DEFAULTS["head_lr_factor"])
    assert len(clf.history[-1]["batches"]) == int(np.ceil(len(X) / TEXT_DEFAULTS["batch_size"]))
    assert clf.get_params()["lr"] is None  # clone-safe: the parameter keeps None
    image = FineTunedClassifier("smallcnn", pretrained=False, max_epochs=1, image_size=16)
    image.fit(np.zeros((4, 16, 16), dtype=np.uint8), [0, 1, 0, 1])
    assert {g["lr"] for g in image.optimizer_.param_groups} == {1e-3}  # images: unchanged


def test_search_space_covers_encoder_layers_and_text_augmenter(fast):
    from skft.search.space import default_search_space

    assert skft.get_backbone(fast["backbone"]).n_groups == 3  # from config.json, no build
    space = default_search_space(FineTunedClassifier(**fast, augment="eda"))
    assert list(space["frozen_depth"].choices) == [0, 1, 2, "all"]
    assert "augment_strength" in space and "augment__max_share" in space
    assert space["lr"].high <= 5e-4  # text encoders: small rates (skft's range goes to 0.1)
    plain = default_search_space(FineTunedClassifier(**fast))  # text default: no augmentation
    assert "augment_strength" not in plain and "augment__max_share" not in plain


# --------------------------------------------------------------------------
# the packaged MiniLM and hf: names
# --------------------------------------------------------------------------


def test_packaged_minilm_offline(offline, texts):
    X, y = texts
    spec = skft.get_backbone("all-MiniLM-L6-v2")
    assert spec.name == "minilm" and spec.n_groups == 7
    clf = FineTunedClassifier("minilm", frozen_depth="all", max_epochs=2, random_state=0)
    clf.fit(X[:6] + X[-6:], y[:6] + y[-6:])
    assert len(clf.module_.groups) == 7 and clf.module_.head.in_features == 384
    # mean pooling of the untouched encoder = the sentence embedding of all-MiniLM-L6-v2
    Xt = adapt_text(["a quick test"], _minilm_folder(), 128)
    with torch.no_grad():
        feats = clf.module_.neck(clf.module_.prefix(Xt, 7))
    model = clf.module_.original_model.eval()
    with torch.no_grad():
        ids = Xt[:, 0].long()
        ref = model(input_ids=ids, attention_mask=Xt[:, 1].long()).last_hidden_state.mean(1)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-4)


def _minilm_folder():
    from skft_transformers import minilm_folder

    return minilm_folder()


def test_missing_hf_model_offline_says_how_to_pass_a_folder(offline, texts, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries
    X, y = texts
    with pytest.raises(ValueError, match="pass a local folder instead: backbone='hf:/path"):
        FineTunedClassifier("hf:no-such-org/no-such-model", max_epochs=1).fit(X, y)


# --------------------------------------------------------------------------
# other encoder layouts: DeBERTa (relative-position attention)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_deberta", "tiny_mpnet"])
def test_layer_groups_compute_what_the_model_computes(fixture, request):
    """The groups chained (each on its batch's own longest text) equal the model's forward."""
    folder = request.getfixturevalue(fixture)
    parts = _model.build_encoder(folder, "mean", True)
    model = parts.model.eval()
    Xt = adapt_text(["free cash now", "see you at home tonight friend", "ok"], folder, 32)
    x = Xt.float()
    with torch.no_grad():
        for _, group in parts.groups:
            group.eval()
            x = group(x)
        mask = Xt[:, 1].long()
        ref = model(input_ids=Xt[:, 0].long(), attention_mask=mask).last_hidden_state
    assert x.shape[1] == Xt.shape[-1]  # padded back to the length it was given
    for i, n in enumerate(mask.sum(1).tolist()):  # padded positions differ by design
        torch.testing.assert_close(x[i, :n, :-1], ref[i, :n], atol=1e-5, rtol=1e-4)


def test_deberta_fits_freezes_and_shares_its_relative_embeddings(tiny_deberta, texts):
    X, y = texts
    settings = dict(backbone="hf:" + tiny_deberta, max_epochs=3, batch_size=8, random_state=0,
                    lr=1e-3, feature_cache=False, freeze="depth")  # fmt: skip
    clf = FineTunedClassifier(**settings, frozen_depth=1)
    clf.initialize_module = _record_initial(clf.initialize_module, clf)
    clf.fit(X, y)
    assert clf.module_.group_names == ["embeddings", "layer0", "layer1"]
    assert clf.score(X, y) > 0.6
    embeddings = clf.module_.groups[0]
    assert set(embeddings.relative) == {"rel_embeddings", "LayerNorm"}  # frozen with group 0
    assert hasattr(clf.module_.groups[1], "conv")  # the v2 convolution: layer0's group
    for name, group in zip(clf.module_.group_names, clf.module_.groups):
        before = clf.initial_[name]
        changed = any(not torch.equal(p, before[k]) for k, p in group.state_dict().items())
        assert changed == (name != "embeddings"), name
    del clf.initialize_module  # the recording wrapper is local: not picklable
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    shared = restored.module_.groups[1]._encoder[0].rel_embeddings
    assert shared is restored.module_.groups[0].relative["rel_embeddings"]  # still one module


def test_mpnet_fits_with_its_relative_bias_in_the_embeddings_group(tiny_mpnet, texts, tmp_path):
    X, y = texts
    settings = dict(backbone="hf:" + tiny_mpnet, max_epochs=2, batch_size=8, random_state=0,
                    lr=1e-3, freeze="depth", frozen_depth=1)  # fmt: skip
    clf = FineTunedClassifier(**settings).fit(X, y)
    bias = clf.module_.groups[0].relative["relative_attention_bias"]
    assert not bias.weight.requires_grad  # frozen with group 0
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    shared = restored.module_.groups[2]._encoder[0].relative_attention_bias
    assert shared is restored.module_.groups[0].relative["relative_attention_bias"]
    loaded = skft.load(clf.save(tmp_path / "mpnet.skft"))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_text_encoders_run_fp32_under_auto_precision_on_cuda(fast, texts, monkeypatch):
    """issue 26: bf16 autocast measured slower than fp32 for MiniLM on an H200."""
    from skft.plugins import get_backbone

    assert get_backbone("minilm").cuda_precision == "fp32"
    X, y = texts
    clf = FineTunedClassifier(**fast).fit(X, y)
    assert clf.backbone_spec_.cuda_precision == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    from skft.params.setup import decide

    clf.device = "cuda"  # decided, not run: no CUDA here
    assert decide(clf).autocast is None
    clf.precision = "bf16"
    assert decide(clf).autocast is torch.bfloat16
