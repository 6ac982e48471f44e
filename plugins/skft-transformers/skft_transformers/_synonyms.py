"""Offline synonyms: nearest whole-word neighbours in the encoder's own input embeddings.

For a token that is a whole alphabetic word (``"movie"``, not ``"##s"``, ``"[CLS]"`` or
``"!"``), its synonyms are the ``K`` other whole alphabetic words whose input-embedding
vectors have the highest cosine similarity with it. The embedding matrix is the pretrained
one of the backbone's own weights (read from its safetensors file), so nothing is
downloaded and no word list ships with the plugin. Neighbours are computed on demand for
the words present in the data and memoised per model (one matrix product per new word batch).
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np
import torch

__all__ = ["Vocabulary", "fill_synonyms", "vocabulary"]

_MARKERS = "Ġ▁"  # byte-level BPE and SentencePiece word-start markers


class Vocabulary:
    """Whole-word candidates of one model's vocabulary and a memo of their neighbours."""

    def __init__(self, source: str, k: int) -> None:
        from ._tokens import load_tokenizer

        vocab = load_tokenizer(source).get_vocab(with_added_tokens=False)
        size = max(vocab.values()) + 1
        self.k = k
        self.whole = np.zeros(size, dtype=bool)
        for token, i in vocab.items():
            word = token.lstrip(_MARKERS)
            if not token.startswith("##") and len(word) >= 2 and word.isalpha():
                self.whole[i] = True
        self.candidates = np.flatnonzero(self.whole)
        self.source = source
        self._emb: torch.Tensor | None = None
        self.table = np.full((size, k), -2, dtype=np.int32)  # -2: not computed yet
        self._lock = threading.Lock()

    def embeddings(self) -> torch.Tensor:
        if self._emb is None:
            weight = _input_embeddings(self.source).float()
            self._emb = torch.nn.functional.normalize(weight, dim=1)
        return self._emb

    def neighbours(self, ids: np.ndarray) -> np.ndarray:
        """``(len(ids), k)`` synonym ids (-1: none) of whole-word token ids."""
        with self._lock:
            todo = np.unique(ids[self.table[ids, 0] == -2])
            if todo.size:
                emb = self.embeddings()
                cand = torch.as_tensor(self.candidates)
                for start in range(0, len(todo), 1024):
                    chunk = torch.as_tensor(todo[start : start + 1024], dtype=torch.long)
                    sims = emb[chunk] @ emb[cand].T
                    sims[chunk.unsqueeze(1) == cand.unsqueeze(0)] = -2.0  # not itself
                    top = sims.topk(min(self.k, len(cand) - 1), dim=1).indices
                    found = np.full((len(chunk), self.k), -1, dtype=np.int32)
                    found[:, : top.shape[1]] = cand[top].numpy()
                    self.table[chunk.numpy()] = found
            return self.table[ids]


def _input_embeddings(source: str) -> torch.Tensor:
    """The input-embedding matrix of ``source``'s pretrained weights (safetensors when present)."""
    path = os.path.join(source, "model.safetensors")
    if os.path.isfile(path):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            keys = [k for k in f.keys() if k.endswith("word_embeddings.weight")]
            if keys:
                return f.get_tensor(keys[0])
    from ._model import load_model

    return load_model(source, True).get_input_embeddings().weight.detach()


@lru_cache(maxsize=8)
def vocabulary(source: str, k: int) -> Vocabulary:
    return Vocabulary(source, k)


def fill_synonyms(source: str, out: np.ndarray) -> None:
    """Fill the synonym channels of adapted token data ``out`` (N, 3 + K, L) in place."""
    from ._tokens import IDS, SYN, WORD

    k = out.shape[1] - SYN
    vocab = vocabulary(source, k)
    ids, words = out[:, IDS], out[:, WORD]
    # a word of exactly one token: its neighbours (whole-word tokens) can replace it
    single = words >= 0
    same_prev = np.zeros_like(single)
    same_prev[:, 1:] = words[:, 1:] == words[:, :-1]
    same_next = np.zeros_like(single)
    same_next[:, :-1] = words[:, :-1] == words[:, 1:]
    single &= ~same_prev & ~same_next
    ok = single & vocab.whole[np.clip(ids, 0, len(vocab.whole) - 1)]
    rows, cols = np.nonzero(ok)
    if rows.size:
        syn = vocab.neighbours(ids[rows, cols])
        for j in range(k):
            out[rows, SYN + j, cols] = syn[:, j]
