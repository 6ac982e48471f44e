"""EDA text augmenters (Wei and Zou 2019, EMNLP) on token-id batches.

``synonym`` replaces words by synonyms, ``insert`` inserts a synonym of a random word at a
random position, ``swap`` swaps two words, ``delete`` drops each word with probability
``alpha``; ``eda`` applies one of the four, drawn per sample. Words are whole words of the
tokenised text (all their word pieces move together); synonyms come from the encoder's own
input embeddings (:mod:`skft_transformers._synonyms`), carried in the batch.

``augment_strength`` s maps to Wei and Zou's alpha, the share of a text's words changed:
``alpha = max_share * s`` (``augment__max_share``, 0.3 by default, so s = 1/3 is their
alpha = 0.1). Each sample changes ``alpha * n_words`` words in expectation (rounded at
random, so small strengths still act on some samples); s = 0 returns the batch unchanged.
Randomness is per sample and comes only from the generator skft passes (seeded from
``random_state``); skft calls augmenters on training batches only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from skft.plugin_api import Interval, Real, StrOptions, check_parameters
from skft.specs import Augmenter

from ._tokens import IDS, MASK, SYN, WORD

__all__ = ["OPS", "TextAugment"]

OPS = ("synonym", "insert", "swap", "delete")


class TextAugment(Augmenter):
    """One EDA operation (or ``"eda"``: one of the four per sample) on ``(B, 3 + K, L)`` ids."""

    input_kinds = ("text",)

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "op": [StrOptions({"eda", *OPS})],
        "max_share": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, op: str = "eda", max_share: float = 0.3) -> None:
        # op is the registered name's (synonym, ...), not a user's augment__ parameter
        check_parameters(self._parameter_constraints, {"op": op})
        check_parameters(self._parameter_constraints, {"max_share": max_share}, "augment__")
        self.op, self.max_share = op, float(max_share)

    def __repr__(self) -> str:
        return f"TextAugment(op={self.op!r}, max_share={self.max_share})"

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator, y=None):
        if strength <= 0:
            return X
        alpha = self.max_share * float(strength)
        seeds = torch.randint(
            0, 2**31 - 1, (len(X),), generator=generator, device=generator.device
        ).tolist()
        rows = X.detach().cpu().numpy()
        out = np.empty_like(rows)
        for i, (row, seed) in enumerate(zip(rows, seeds)):
            rng = np.random.default_rng(seed)
            op = self.op if self.op != "eda" else OPS[rng.integers(len(OPS))]
            out[i] = _apply(row, op, alpha, rng)
        return torch.from_numpy(out).to(X.device)


def _split(row: np.ndarray) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[np.ndarray]]:
    """Leading special tokens, words (lists of token columns), trailing special tokens."""
    n = int(row[MASK].sum())
    head: list[np.ndarray] = []
    words: list[list[np.ndarray]] = []
    tail: list[np.ndarray] = []
    last = None
    for j in range(n):
        col, w = row[:, j], int(row[WORD, j])
        if w < 0:
            (tail if words else head).append(col)
        elif w == last and not tail:
            words[-1].append(col)
        else:
            if tail:  # a special token between words (a text pair): keep it as a word
                words.append(tail)
                tail = []
            words.append([col])
        last = w
    return head, words, tail


def _n_changes(alpha: float, n_words: int, rng: np.random.Generator) -> int:
    expected = alpha * n_words
    return int(expected) + int(rng.random() < expected - int(expected))


def _synonym_token(word: list[np.ndarray], rng: np.random.Generator) -> np.ndarray | None:
    if len(word) != 1:
        return None
    syn = word[0][SYN:]
    syn = syn[syn >= 0]
    if not syn.size:
        return None
    col = word[0].copy()
    col[IDS] = syn[rng.integers(syn.size)]
    col[SYN:] = -1  # no synonyms of synonyms
    return col


def _apply(row: np.ndarray, op: str, alpha: float, rng: np.random.Generator) -> np.ndarray:
    head, words, tail = _split(row)
    if not words:
        return row
    n = _n_changes(alpha, len(words), rng)
    if op == "delete":
        keep = rng.random(len(words)) >= alpha
        if not keep.any():
            keep[rng.integers(len(words))] = True
        words = [w for w, k in zip(words, keep) if k]
    elif op == "swap" and len(words) > 1:
        for _ in range(n):
            a, b = rng.choice(len(words), 2, replace=False)
            words[a], words[b] = words[b], words[a]
    elif op == "synonym" and n:
        able = [i for i, w in enumerate(words) if _synonym_token(w, rng) is not None]
        for i in rng.permutation(able)[:n]:
            words[i] = [_synonym_token(words[i], rng)]
    elif op == "insert":
        able = [w for w in words if _synonym_token(w, rng) is not None]
        for _ in range(n if able else 0):
            new = _synonym_token(able[rng.integers(len(able))], rng)
            words.insert(int(rng.integers(len(words) + 1)), [new])
    return _join(row, head, words, tail)


def _join(row: np.ndarray, head: list, words: list[list[np.ndarray]], tail: list) -> np.ndarray:
    out = np.zeros_like(row)
    out[WORD:] = -1
    length = row.shape[1]
    body: list[np.ndarray] = []
    for k, word in enumerate(words):
        for col in word:
            col = col.copy()
            col[WORD] = k if col[WORD] >= 0 else -1
            body.append(col)
    body = body[: max(length - len(head) - len(tail), 0)]
    cols = head + body + tail
    if cols:
        out[:, : len(cols)] = np.stack(cols, axis=1)
    return out

