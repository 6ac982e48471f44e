"""EDA text augmenters: identity at 0, effect growing with strength, training batches only."""

from __future__ import annotations

import numpy as np
import pytest
import skft
import torch
from skft import FineTunedClassifier
from skft.testing import check_augmenter

from skft_transformers import TEXT_AUGMENTERS, minilm_folder
from skft_transformers._augment import TextAugment
from skft_transformers._synonyms import vocabulary
from skft_transformers._text import IDS, MASK, WORD, adapt_text, load_tokenizer


@pytest.fixture
def batch(tiny_bert, texts):
    X, _ = texts
    return adapt_text(X * 4, tiny_bert, 32)  # 96 rows


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _words(row: torch.Tensor) -> list[int]:
    n = int(row[MASK].sum())
    return [int(t) for t, w in zip(row[IDS, :n], row[WORD, :n]) if w >= 0]


def _changed_share(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Mean share of a text's word tokens that differ (position by position, or in count)."""
    shares = []
    for a, b in zip(X, Y):
        wa, wb = _words(a), _words(b)
        diff = sum(x != y for x, y in zip(wa, wb)) + abs(len(wa) - len(wb))
        shares.append(diff / max(len(wa), 1))
    return float(np.mean(shares))


@pytest.mark.parametrize("op", TEXT_AUGMENTERS)
def test_identity_at_zero_and_effect_grows_with_strength(op, batch):
    aug = skft.augmenters().get(op)()
    assert aug.input_kinds == ("text",)
    assert torch.equal(aug(batch, 0.0, _gen()), batch)
    weak = _changed_share(batch, aug(batch, 0.2, _gen()))
    strong = _changed_share(batch, aug(batch, 1.0, _gen()))
    assert 0 < weak < strong, (weak, strong)


@pytest.mark.parametrize("op", TEXT_AUGMENTERS)
def test_plugin_kit_contract(op, batch):
    check_augmenter(op, X=batch)


@pytest.mark.parametrize("op", TEXT_AUGMENTERS)
def test_batches_stay_well_formed(op, batch):
    out = TextAugment(op)(batch, 1.0, _gen(1))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    for row in out:
        n = int(row[MASK].sum())
        assert torch.equal(row[MASK, :n], torch.ones(n, dtype=row.dtype))
        assert row[MASK, n:].sum() == 0
        assert int(row[IDS, 0]) == int(batch[0, IDS, 0]) and row[WORD, 0] == -1  # [CLS]
        assert int(row[IDS, n - 1]) == int(batch[0, IDS, int(batch[0, MASK].sum()) - 1])  # [SEP]
    if op == "delete":
        assert out[:, MASK].sum() < batch[:, MASK].sum()
    if op == "insert":
        assert out[:, MASK].sum() > batch[:, MASK].sum()
    if op == "swap":  # the same words, in another order
        assert all(sorted(_words(a)) == sorted(_words(b)) for a, b in zip(batch, out))


def test_seeded_and_random_per_sample(batch):
    aug = TextAugment("eda")
    assert torch.equal(aug(batch, 0.8, _gen(3)), aug(batch, 0.8, _gen(3)))
    same = batch[:1].repeat(16, 1, 1)
    out = aug(same, 1.0, _gen(3))
    assert len({tuple(row[IDS].tolist()) for row in out}) > 1  # per-sample randomness


def test_synonyms_are_whole_word_embedding_neighbours():
    source = minilm_folder()
    tok = load_tokenizer(source)
    ids = np.array([tok.token_to_id(w) for w in ("movie", "cash")])
    found = vocabulary(source, 4).neighbours(ids)
    names = [[tok.id_to_token(int(i)) for i in row] for row in found]
    assert "film" in names[0] and "money" in names[1]
    assert not any(n.startswith("##") or n.startswith("[") for row in names for n in row)


def test_augmentation_only_on_training_batches(fast, texts, monkeypatch):
    X, y = texts
    calls: list[int] = []
    original = TextAugment.__call__

    def spy(self, X, strength, generator, y=None):
        calls.append(len(X))
        return original(self, X, strength, generator)

    monkeypatch.setattr(TextAugment, "__call__", spy)
    clf = FineTunedClassifier(**fast, augment="eda", augment_strength=1.0).fit(X, y)
    assert sum(calls) == fast["max_epochs"] * len(X)  # every training sample, every epoch
    calls.clear()
    first = clf.predict_proba(X)
    assert calls == [] and np.array_equal(first, clf.predict_proba(X))


def test_text_augmenters_refuse_images():
    with pytest.raises(ValueError, match="works on text input"):
        FineTunedClassifier("smallcnn", pretrained=False, augment="eda").fit(
            np.zeros((4, 16, 16), dtype=np.uint8), [0, 1, 0, 1]
        )


def test_bad_max_share():
    with pytest.raises(ValueError, match="max_share"):
        skft.augmenters().get("eda")(max_share=0)
