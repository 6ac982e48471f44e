"""Decoded image files kept in memory: a search, ``cross_val_score`` and ``score`` decode once.

Every fit, prediction and score of an estimator given image paths loads them into
memory (:func:`skft.data.images.load_image_files`); the cache keeps each decoded,
resized file, so the folds and candidates of a search, its refit and ``score`` read
and decode each file once per process.

An entry is keyed by what decides its pixels:

- the file's identity: path, inode, size, modification and status-change times in
  nanoseconds, from ``os.stat`` before each look-up, so a rewritten, replaced or
  touched file is a miss and never a stale hit (a file changed without changing any of
  these, within one timestamp tick, is the one case left);
- the target size (shorter side resized, centre crop);
- the decoder: ``"cpu"`` (libjpeg-turbo, libpng, PIL) or ``"cuda"`` (nvJPEG and a resize
  on the device give slightly different pixels);
- ``"rgb"`` for the rare second decoding of a 16-bit gray file among colour files.

It holds the file's tensor as decoded (1 channel for gray files, else 3) and its PIL
mode. The budget rules are the frozen-prefix cache's (:mod:`skft.training.budget`):
process-wide, thread-safe, least recently used files evicted first, at most
``SKFT_DECODE_CACHE_MB`` MiB (1024 by default; 0 switches the cache off for the
process). An estimator with ``decode_cache=False`` neither reads nor fills it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..training.budget import BoundedLRU, budget_bytes

__all__ = ["DecodeCache", "DecodeStats", "decode_cache", "file_identity"]


def file_identity(path: str, st: os.stat_result) -> tuple:
    """What says a file is unchanged: path, inode, size, modification and change times (ns)."""
    return (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class DecodeStats:
    """Counters since the last :meth:`DecodeCache.clear`, in files."""

    hits: int = 0  # files served from the cache
    misses: int = 0  # files read and decoded
    evictions: int = 0  # files dropped to stay under max_bytes


class DecodeCache:
    """Decoded image files by (file identity, size, decoder), LRU-bounded in bytes."""

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = budget_bytes("SKFT_DECODE_CACHE_MB")
        self._files = BoundedLRU(max_bytes)
        self.stats = DecodeStats()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def max_bytes(self) -> int:
        return self._files.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._files.max_bytes = int(value)

    @property
    def enabled(self) -> bool:
        return self._files.max_bytes > 0

    @property
    def nbytes(self) -> int:
        """Bytes held by decoded files."""
        return self._files.nbytes

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._files.lock:
            self._files.clear()
            self.stats = DecodeStats()

    def get(self, path: str, size: int, decoder: str, *extra: str) -> tuple[Any, str] | None:
        """``(tensor, mode)`` of ``path`` as it is now on disk, or ``None`` (a miss)."""
        try:
            identity = file_identity(path, os.stat(path))
        except OSError:
            return None  # reading it says what is wrong, naming the file
        hit = self._files.get((identity, int(size), decoder, *extra))
        with self._files.lock:
            if hit is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
        return hit

    def put(
        self, identity: tuple, size: int, decoder: str, img: torch.Tensor, mode: str, *extra: str
    ) -> None:
        """Keep ``img`` (a file's own tensor, not a view into a batch) under its key."""
        key: Any = (identity, int(size), decoder, *extra)
        evicted = self._files.put(key, (img, mode), img.numel() * img.element_size())
        if evicted:
            with self._files.lock:
                self.stats.evictions += evicted


#: The process-wide cache every estimator uses.
decode_cache = DecodeCache()
