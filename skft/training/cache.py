"""The frozen-prefix feature cache.

When the first ``k`` layer groups are frozen (and in eval mode) for a whole
fit and the training batches are not augmented, their output does not change
between epochs. skft computes it once per sample and trains the rest of the
network on it, so a linear probe costs one forward pass plus head training.

Entries are keyed on *content*, never on object identity:

- the model key hashes the preprocessing buffers and every parameter and
  buffer of the cached groups (plus their classes, ``k``, the device and
  dtype), so two fits share entries exactly when they would compute the same
  prefix;
- the row key hashes each adapted input sample's bytes, so CV folds, search
  candidates and refits that see the same samples share entries, and changed
  data can never hit a stale entry.

The cache is process-wide (``skft.training.cache.feature_cache``), bounded in bytes
(least recently used rows are evicted first; ``SKFT_FEATURE_CACHE_MB`` sets
the bound, 1024 MiB by default) and thread-safe: the budget rules of
:mod:`skft.training.budget`, which the decoded-image cache shares. Switch it off
per estimator with ``feature_cache=False``; results are the same either way.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .budget import BoundedLRU, budget_bytes
from .progress import bar_wanted

__all__ = [
    "CacheStats",
    "FeatureCache",
    "cache_depth",
    "cacheable_depth",
    "prefix_features",
    "feature_cache",
    "fixed_prefix",
    "model_key",
]

#: Seconds of computing frozen features before their progress bar appears.
BAR_AFTER = 3.0


@dataclass
class CacheStats:
    """Counters since the last :meth:`FeatureCache.clear`, in samples (rows)."""

    hits: int = 0  # rows served from the cache
    misses: int = 0  # rows computed by the frozen prefix
    evictions: int = 0  # rows dropped to stay under max_bytes
    lookups: int = 0  # calls that asked the cache for features (fits and predictions)


def _update_with_tensor(h, t: torch.Tensor) -> None:
    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    t = t.cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16
        t = t.view(torch.int16)
    h.update(t.numpy().tobytes())


def model_key(module, depth: int, device: torch.device | str) -> str:
    """Content hash of what produces the cached features: preprocessing + first ``depth`` groups.

    Hashing a large prefix takes tens of milliseconds: estimators compute it
    once per freezing state (:meth:`skft.base.FineTuneMixin._cache_key`), not per call.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{depth}|{torch.device(device)}|".encode())
    parts: list[nn.Module] = [module.preprocess, *module.groups[:depth]]
    for i, part in enumerate(parts):
        h.update(f"#{i}:{type(part).__qualname__}".encode())
        for name, t in part.state_dict().items():
            h.update(name.encode())
            _update_with_tensor(h, t)
    return h.hexdigest()


def row_keys(X: torch.Tensor) -> list[bytes]:
    """One content hash per sample of an adapted input batch."""
    Xc = X.detach().cpu().contiguous()
    if Xc.dtype == torch.bfloat16:
        Xc = Xc.view(torch.int16)
    arr = Xc.numpy().reshape(len(Xc), -1)
    tag = f"{Xc.dtype}{tuple(Xc.shape[1:])}".encode()
    return [hashlib.blake2b(tag + row.tobytes(), digest_size=16).digest() for row in arr]


class FeatureCache:
    """Per-sample outputs of frozen prefixes, LRU-bounded in bytes."""

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            max_bytes = budget_bytes("SKFT_FEATURE_CACHE_MB")
        self._rows = BoundedLRU(max_bytes)
        self._lock = self._rows.lock
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def max_bytes(self) -> int:
        return self._rows.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._rows.max_bytes = int(value)

    @property
    def nbytes(self) -> int:
        """Bytes held by cached features."""
        return self._rows.nbytes

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._rows.clear()
            self.stats = CacheStats()

    def _put(self, key: tuple[str, bytes], row: torch.Tensor) -> None:
        self.stats.evictions += self._rows.put(key, row)

    def features(
        self,
        module,
        depth: int,
        X: torch.Tensor,
        device: torch.device | str,
        batch_size: int = 64,
        key: str | None = None,
        lengths: torch.Tensor | None = None,
        length_axis: int = 1,
        progress: bool = False,
    ) -> torch.Tensor:
        """``module.prefix(X, depth)``: preprocessing and the first ``depth`` groups.

        Rows already cached for the same prefix weights are reused; the others
        are computed in eval mode without gradients, on ``device``, and stored.
        Returns a tensor on ``device`` with one row per sample of ``X``.
        ``key`` is :func:`model_key` of ``(module, depth, device)`` when the
        caller already has it. Variable-length input comes with ``lengths``
        (each sample's, on the CPU): each chunk of ``X`` is trimmed to its
        longest sample before the prefix runs, and its features are padded back
        with zeros along ``length_axis`` to the length of ``X``, so rows stack.
        """
        device = torch.device(device)
        mkey = key or model_key(module, depth, device)
        rkeys = row_keys(X)
        with self._lock:
            found: dict[bytes, torch.Tensor] = {}
            for rk in rkeys:
                if rk not in found:
                    hit = self._rows.get((mkey, rk))
                    if hit is not None:
                        found[rk] = hit
            self.stats.lookups += 1
        todo: dict[bytes, int] = {}
        for i, rk in enumerate(rkeys):
            if rk not in found and rk not in todo:
                todo[rk] = i
        if todo:
            idx = torch.as_tensor(list(todo.values()), dtype=torch.long)
            todo_lengths = None if lengths is None else lengths[idx]
            computed = _run_prefix(
                module, depth, X[idx], device, batch_size, todo_lengths, length_axis, progress
            )
            with self._lock:
                for rk, row in zip(todo, computed):
                    row = row.clone()  # own storage: the byte bound counts what is kept
                    found[rk] = row
                    self._put((mkey, rk), row)
        with self._lock:
            self.stats.hits += sum(1 for rk in rkeys if rk not in todo)
            self.stats.misses += len(todo)
        return torch.stack([found[rk] for rk in rkeys])


@contextmanager
def _eval(module: nn.Module) -> Iterator[None]:
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def _run_prefix(
    module,
    depth: int,
    X: torch.Tensor,
    device: torch.device,
    batch_size: int,
    lengths: torch.Tensor | None = None,
    length_axis: int = 1,
    progress: bool = False,
) -> list[torch.Tensor]:
    from ..data.adapters import trim_to_longest

    out = []
    starts = range(0, len(X), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(
            starts,
            desc="frozen features",
            unit="batch",
            delay=BAR_AFTER,
            leave=False,
            file=sys.stderr,
        )
    with torch.no_grad(), _eval(module):
        for start in starts:
            chunk = X[start : start + batch_size]
            if lengths is None:
                out.extend(module.prefix(chunk.to(device), depth).unbind(0))
                continue
            trimmed = trim_to_longest(chunk, lengths[start : start + batch_size], -1)
            feats = module.prefix(trimmed.to(device), depth)
            out.extend(_pad_along(feats, length_axis, chunk.shape[-1]).unbind(0))
    return out


def _pad_along(t: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    """``t`` zero-padded along ``axis`` to ``length``."""
    if t.shape[axis] >= length:
        return t
    shape = list(t.shape)
    shape[axis] = length
    out = t.new_zeros(shape)
    out.narrow(axis, 0, t.shape[axis]).copy_(t)
    return out


#: The process-wide cache every estimator uses.
feature_cache = FeatureCache()


def cacheable_depth(
    policy: Any, names: list[str], frozen_depth: int, first_epoch: int, n_epochs: int
) -> int:
    """Leading groups that ``policy`` keeps frozen and in eval mode in every epoch of a run."""
    depth = len(names)
    for epoch in range(first_epoch, first_epoch + max(int(n_epochs), 1)):
        depth = min(depth, fixed_prefix(policy(names, frozen_depth, epoch)))
        if depth == 0:
            break
    return depth


def fixed_prefix(state: Any) -> int:
    """Leading groups of a :class:`~skft.specs.FreezeState` that are frozen and in eval mode."""
    k = 0
    while k < len(state.trainable) and not state.trainable[k] and state.eval_mode[k]:
        k += 1
    return k


def cache_depth(net: Any, first_epoch: int, n_epochs: int) -> int:
    """Groups of ``net`` frozen in eval mode for a whole run when its inputs repeat; 0: no cache."""
    if not net.setup_.cache_in_training:  # augmented inputs differ between epochs
        return 0
    names = net.module_.group_names
    return cacheable_depth(net.freeze_policy_, names, net.frozen_depth_, first_epoch, n_epochs)


def prefix_features(
    net: Any, X: torch.Tensor, depth: int, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """``X`` past ``net``'s first ``depth`` groups, from the cache.

    The prefix's content key is the estimator's (``net.prefix_key``: once per freezing
    state and weights), not computed once per ``partial_fit`` call. ``lengths``: each
    sample's length, for variable-length input (see :meth:`FeatureCache.features`).
    """
    key = net.prefix_key(depth)
    size = max(net.batch_size if net.batch_size > 0 else len(X), 64)
    axis = net.input_kind_.feature_length_axis
    return feature_cache.features(
        net.module_,
        depth,
        X,
        net.device,
        size,
        key=key,
        lengths=lengths,
        length_axis=axis,
        progress=bar_wanted(net),
    )
