"""The learning-rate range test (Smith 2015; fastai's ``lr_find``) for skft's estimators.

A clone of the estimator trains one batch at each of ``num_iter`` learning rates
spaced geometrically from ``start_lr`` to ``end_lr``, recording the training loss;
the test stops early once the loss diverges. The suggested rate is the one where
the smoothed loss falls fastest (fastai's "steep" suggestion), taken before the
loss reaches its minimum. The per-group factors of the freezing policy
(``freeze__lr_decay``) are kept, so the rate found is the base rate ``lr``.
With a frozen prefix and no augmentation the clone trains on cached features,
so the test costs about one forward pass through the prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from skorch.callbacks import Callback

__all__ = ["LRFinder", "LRFindResult", "lr_find"]


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured: the rates tried, their losses and the suggestion."""

    suggestion: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)

    def plot(self, ax: Any = None) -> Any:
        """Loss against learning rate (log scale), the suggestion marked; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, alpha=0.3, label="loss per batch")
        ax.plot(self.lrs, self.smoothed, label="smoothed")
        ax.axvline(self.suggestion, color="C3", linestyle="--", label=f"{self.suggestion:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("Learning-rate range test")
        ax.legend()
        return ax


class LRFinder(Callback):
    """Set the rate of each training batch from a schedule and record its loss."""

    def __init__(self, lrs: list[float], diverge: float = 4.0, beta: float = 0.7) -> None:
        self.lrs, self.diverge, self.beta = lrs, diverge, beta
        self.losses: list[float] = []
        self.smoothed: list[float] = []

    def on_batch_begin(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if training:
            lr = self.lrs[len(self.losses)]
            for group in net.optimizer_.param_groups:
                group["lr"] = lr * group.get("lr_factor", 1.0)

    def on_batch_end(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        loss = float(kwargs["loss"].detach())
        self.losses.append(loss)
        avg = loss if not self.smoothed else self.beta * self.smoothed[-1] + (1 - self.beta) * loss
        self.smoothed.append(avg)
        done = len(self.losses) >= len(self.lrs)
        if done or not math.isfinite(loss) or avg > self.diverge * min(self.smoothed):
            raise KeyboardInterrupt  # skorch's way to end training early


def lr_find(
    estimator: Any,
    X: Any,
    y: Any,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    num_iter: int = 60,
) -> LRFindResult:
    """Run the learning-rate range test on a clone of ``estimator``; ``estimator`` is untouched.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
    X, y : the training data, as ``fit`` takes them.
    start_lr, end_lr : float
        The range, ``0 < start_lr < end_lr``.
    num_iter : int
        Batches (one rate each), over as many epochs as that takes.

    Returns
    -------
    LRFindResult
        ``suggestion`` (inside the range), the rates tried and their losses;
        ``.plot()`` draws the curve.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr!r} and {end_lr!r}")
    if int(num_iter) < 5:
        raise ValueError(f"num_iter must be an int >= 5, got {num_iter!r}")
    lrs = list(np.geomspace(start_lr, end_lr, int(num_iter)))
    finder = LRFinder(lrs)
    probe = clone(estimator)
    callbacks = [*(probe.callbacks or []), ("lr_finder", finder)]
    # the finder sets every rate itself: no schedule on top of it
    probe.set_params(
        lr=start_lr, callbacks=callbacks, train_split=None, verbose=0, lr_schedule="constant"
    )
    for _ in range(int(num_iter)):  # at least one batch an epoch
        n = len(finder.losses)
        probe.partial_fit(X, y)
        if len(finder.losses) == n or len(finder.losses) >= len(lrs) or _stopped(finder):
            break
    return LRFindResult(_suggest(lrs, finder.smoothed), lrs[: len(finder.losses)],
                        finder.losses, finder.smoothed)  # fmt: skip


def _stopped(finder: LRFinder) -> bool:
    last = finder.smoothed[-1] if finder.smoothed else 0.0
    return not math.isfinite(last) or last > finder.diverge * min(finder.smoothed)


def _suggest(lrs: list[float], smoothed: list[float]) -> float:
    """The rate of steepest descent of the smoothed loss, before its minimum."""
    losses = np.asarray(smoothed, dtype=float)
    if len(losses) < 3 or not np.isfinite(losses).any():
        return float(lrs[0])
    end = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.inf))) + 1
    if end < 3:
        return float(lrs[max(end - 1, 0)])
    slope = np.gradient(losses[:end], np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slope))])
