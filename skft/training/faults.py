"""Faults named, not swallowed: a loss that stops being finite, CUDA out of memory."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from skorch.callbacks import Callback

__all__ = ["FiniteLoss", "NonFiniteLossError", "out_of_memory_hint"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class FiniteLoss(Callback):
    """Stop training at the first training batch whose loss is NaN or infinite.

    The error names the epoch and the batch (both from 1) and suggests a lower
    ``lr``: a diverging loss only spreads NaN through the weights.
    """

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self._batch = 0

    def on_batch_end(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        self._batch = getattr(self, "_batch", 0) + 1
        loss = kwargs.get("loss")
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else loss
        if value is None or math.isfinite(value):
            return
        raise NonFiniteLossError(
            f"training loss became {value} at epoch {len(net.history)}, batch {self._batch} "
            f"(lr={net.lr}): training stopped; try a lower lr (e.g. {net.lr / 10:g}), "
            "and check X and y for extreme values"
        )


@contextlib.contextmanager
def out_of_memory_hint(net: Any) -> Iterator[None]:
    """Re-raise CUDA out-of-memory with the batch size and what to try."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        size = getattr(net, "image_size", None)
        raise torch.OutOfMemoryError(
            f"out of memory on {net.device} with batch_size={net.batch_size}"
            + (f", image_size={size}" if size else "")
            + f": try a smaller batch_size (e.g. {max(1, net.batch_size // 2)}), a smaller "
            "image_size, or a larger frozen_depth. Original error: " + str(exc).strip()
        ) from exc
