"""The text input adapter: strings to one int32 tensor of token ids, checked before any work.

``adapt_text(X, source, max_length)`` returns ``(N, 3 + K, L)``:

* channel 0: token ids, channel 1: attention mask (1 for tokens, 0 for padding);
* channel 2: the word each token belongs to (0, 1, ...; -1 for special tokens and padding);
* channels 3 .. 3+K-1: up to ``K`` synonyms of the token (ids of whole-word tokens, -1 for
  none), for the text augmenters (see :mod:`skft_transformers._synonyms`).

``L`` is the longest tokenised text (at most ``max_length``), so a batch of short texts is
short; the layer groups trim each batch further to its own longest text.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from skft.plugin_api import one_column, warn_at_caller

from ._tokens import IDS, MASK, N_SYNONYMS, SYN, WORD, load_tokenizer

__all__ = ["N_SYNONYMS", "adapt_text", "check_texts", "load_tokenizer"]

#: Synonym candidates carried per token.

#: Names that end so are taken for image files, not texts.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _is_image_path(text: str) -> bool:
    if text.lower().endswith(IMAGE_EXTENSIONS):
        return True
    return 0 < len(text) < 4096 and "\n" not in text and os.path.isfile(text)


def _refuse_paths(texts: list[str]) -> None:
    """A ValueError when every text is a path to a file (an image file, most likely)."""
    if not all(_is_image_path(t) for t in texts):
        return
    example = texts[0]
    if all(t.lower().endswith(IMAGE_EXTENSIONS) for t in texts):
        what = f"X holds image file paths (e.g. {example!r}), not texts"
    else:
        what = f"X holds paths to existing files (e.g. {example!r}), not texts"
    raise ValueError(
        f"{what}: this backbone takes texts and would learn from the path strings. Image "
        "files need an image backbone (e.g. backbone='efficientnet_lite0' or 'resnet18'); "
        "for text files, pass their contents (e.g. [Path(p).read_text() for p in paths])"
    )


def check_texts(X: Any) -> list[str]:
    """X as a list of str: a list, tuple, 1-D numpy array or pandas Series of strings."""
    X = one_column(X, "the texts (e.g. X['text'])")
    if isinstance(X, str):
        raise TypeError("X must be a collection of strings (e.g. a list), got one str")
    if isinstance(X, torch.Tensor) or (isinstance(X, np.ndarray) and X.dtype.kind not in "OUS"):
        raise TypeError(
            f"X is a numeric array of shape {tuple(X.shape)}: image arrays given to a text "
            "backbone; use an image backbone, or pass a list of strings"
        )
    if isinstance(X, np.ndarray):
        if X.ndim != 1:
            raise ValueError(
                f"X is a {X.ndim}-D array of strings (shape {X.shape}); a text backbone takes "
                "a 1-D sequence of strings, one text per sample"
            )
        X = X.tolist()
    if not isinstance(X, (list, tuple)):
        raise TypeError(
            f"X must be a list, tuple, 1-D numpy array or pandas Series of str, got "
            f"{type(X).__name__}"
        )
    if len(X) == 0:
        raise ValueError("X is empty: found 0 texts; at least 1 is required")
    for i, item in enumerate(X):
        if not isinstance(item, str):
            what = (
                "image arrays given to a text backbone"
                if hasattr(item, "shape")
                else (f"X[{i}] is {type(item).__name__} ({item!r:.40}), not str")
            )
            raise TypeError(f"{what}; a text backbone takes strings only")
    _refuse_paths(list(X))
    return list(X)


def _encode(source: str, texts: list[str], max_length: int):
    tok = _fresh_copy(load_tokenizer(source))  # shared (lru_cache): set options on a copy
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok, tok.encode_batch(texts)


def _fresh_copy(tok):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tok.to_str())


def adapt_text(X: Any, source: str, max_length: int = 128, image_size: Any = None) -> torch.Tensor:
    """Strings to ``(N, 3 + K, L)`` int32 token data (see the module docstring)."""
    texts = check_texts(X)
    if max_length is None:
        max_length = 128
    if (
        isinstance(max_length, bool)
        or not isinstance(max_length, (int, np.integer))
        or (max_length < 2)
    ):
        raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
    _, encodings = _encode(source, texts, int(max_length))
    truncated = sum(1 for e in encodings if e.overflowing)
    if truncated:
        warn_at_caller(
            f"{truncated} of {len(texts)} texts were truncated to max_length={max_length} "
            "tokens; raise max_length to keep them whole",
            UserWarning,
        )
    length = max(len(e.ids) for e in encodings)
    out = np.zeros((len(texts), SYN + N_SYNONYMS, length), dtype=np.int32)
    out[:, WORD:] = -1
    for i, e in enumerate(encodings):
        n = len(e.ids)
        out[i, IDS, :n] = e.ids
        out[i, MASK, :n] = e.attention_mask
        special = np.asarray(e.special_tokens_mask, dtype=bool)
        words = np.asarray([-1 if w is None else w for w in e.word_ids], dtype=np.int32)
        words[special] = -1
        out[i, WORD, :n] = words
    from ._synonyms import fill_synonyms

    fill_synonyms(source, out)
    return torch.from_numpy(out)
