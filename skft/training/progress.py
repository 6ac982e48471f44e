"""Progress output of a fit: quiet by default, one line per epoch and a bar when asked.

``verbose=0`` (the default, and what the tests use): nothing. ``verbose=1``: one
line per epoch and, once an epoch has run for ``bar_after`` seconds (5 by
default; ``callbacks__epoch_log__bar_after=...``, ``None`` for never), a
per-batch tqdm bar on stderr, except inside the trials of
:class:`skft.OptunaSearch` (which run side by side). ``verbose=2``: the bar
inside searches too.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

from skorch.callbacks import Callback, PrintLog

__all__ = ["EpochLog", "bar_wanted", "default_callbacks", "in_search"]

_IN_SEARCH = contextvars.ContextVar("skft_in_search", default=False)


@contextlib.contextmanager
def in_search() -> Iterator[None]:
    """Fits inside this context are a search's: no per-batch bar unless ``verbose >= 2``."""
    token = _IN_SEARCH.set(True)
    try:
        yield
    finally:
        _IN_SEARCH.reset(token)


def bar_wanted(net: Any) -> bool:
    """Whether ``net``'s long epochs get a per-batch progress bar."""
    verbose = int(net.verbose or 0)
    return verbose >= 2 or (verbose >= 1 and not _IN_SEARCH.get())


def default_callbacks(net: Any, skorch_defaults: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """skorch's default callbacks less its epoch table, plus skft's.

    Freezing schedule, learning-rate schedule, early stopping (when on), the finite-loss
    check, output.
    """
    from .early_stopping import early_stopping_callbacks
    from .faults import FiniteLoss
    from .freezing import FreezeSchedule
    from .schedule import LRSchedule

    quiet = [
        (n, cb) for n, cb in skorch_defaults if not (isinstance(cb, PrintLog) or cb is PrintLog)
    ]
    return [
        *quiet,
        ("freeze_schedule", FreezeSchedule()),
        ("lr_schedule", LRSchedule()),
        *early_stopping_callbacks(net),
        ("finite_loss", FiniteLoss()),
        ("epoch_log", EpochLog()),
    ]


class EpochLog(Callback):
    """With ``verbose >= 1``: one line per epoch, and a progress bar for long epochs.

    The line holds the epoch, the losses and scores skorch recorded and the
    epoch's duration. A per-batch bar (tqdm, on stderr) appears once an epoch
    has run for ``bar_after`` seconds (``None``: never), so short epochs print
    only their line; inside searches only with ``verbose >= 2`` (:func:`bar_wanted`).
    """

    def __init__(self, bar_after: float | None = 5.0) -> None:
        self.bar_after = bar_after

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        self._start = time.perf_counter()
        self._bar = None
        self._batches = 0
        size = net.batch_size if net.batch_size and net.batch_size > 0 else None
        n = len(dataset_train) if dataset_train is not None else 0
        self._total = math.ceil(n / size) if size and n else None

    def on_batch_end(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training or self.bar_after is None or not bar_wanted(net):
            return
        self._batches += 1
        if self._bar is None and time.perf_counter() - self._start >= self.bar_after:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self._total, initial=self._batches, unit="batch", leave=False, file=sys.stderr
            )
        elif self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not net.verbose:
            return
        row = net.history[-1]
        scores = "  ".join(
            f"{key} {row[key]:.4f}"
            for key in row
            if key not in ("epoch", "dur", "batches")
            and not key.endswith("_batch_count")
            and not key.endswith("_best")
            and isinstance(row[key], (int, float))
            and not isinstance(row[key], bool)
        )
        total = f"/{net.max_epochs}" if len(net.history) <= net.max_epochs else ""
        print(f"epoch {row['epoch']:>3}{total}  {scores}  {row.get('dur', 0.0):.1f} s", flush=True)
