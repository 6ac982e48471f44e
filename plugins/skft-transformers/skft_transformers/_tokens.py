"""Token batches: the fast tokenizer of a model folder and the rows of an encoded text batch.

A batch is int32 ``(n, SYN + N_SYNONYMS, length)``: row ``IDS`` token ids, ``MASK`` the
attention mask, ``WORD`` each token's word index (-1 for special tokens), then
``N_SYNONYMS`` rows of synonym token ids for the augmenters.
"""

from __future__ import annotations

import os
from functools import lru_cache

from ._model import load_error

__all__ = ["IDS", "MASK", "N_SYNONYMS", "SYN", "WORD", "load_tokenizer"]

N_SYNONYMS = 4
IDS, MASK, WORD, SYN = 0, 1, 2, 3


@lru_cache(maxsize=8)
def load_tokenizer(source: str):
    """The fast (Rust) tokenizer of ``source``: ``tokenizer.json`` when present."""
    from tokenizers import Tokenizer

    path = os.path.join(source, "tokenizer.json")
    if os.path.isfile(path):
        return Tokenizer.from_file(path)
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source, use_fast=True)
    except (OSError, ValueError) as exc:
        raise load_error(source, "tokenizer", exc) from exc
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"{source!r} has no fast tokenizer (tokenizer.json)")
    return tok.backend_tokenizer
