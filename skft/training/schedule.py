"""Learning-rate schedules over a fit: ``lr_schedule="constant" | "linear" | "cosine"``.

``"linear"`` is the schedule BERT-style encoders are fine-tuned with (Devlin et
al. 2019; Hugging Face's ``get_linear_schedule_with_warmup``): the rate rises
linearly from 0 over the first :data:`WARMUP` (10%) of the training steps, then
falls linearly to 0 at the last step of ``max_epochs``. ``"cosine"`` warms up the
same way and then follows a half cosine to 0. ``"constant"`` leaves the rates as
they are (skft's image backbones).

The schedule is a factor on every optimizer group's rate, applied before each
training batch, so it composes with the per-group factors of the freezing
policies (:class:`skft.training.freezing.FreezeSchedule`) and with ``head_lr_factor``.
Its position is the training epoch in ``net.history`` plus the share of the
epoch's batches done, over ``max_epochs``: a fit resumed from a checkpoint
continues where it stopped, and epochs beyond ``max_epochs`` (``partial_fit``
after a full fit) keep the last step's factor. A net attribute ``schedule_span_ =
(first_epoch, epochs)`` runs the schedule afresh over those epochs instead (warm-up
included): :class:`skft.Compressed` does so for its recovery epochs.
"""

from __future__ import annotations

import math
from typing import Any

from skorch.callbacks import Callback

__all__ = ["LR_SCHEDULES", "WARMUP", "LRSchedule", "schedule_factor"]

#: ``lr_schedule`` values.
LR_SCHEDULES = ("constant", "linear", "cosine")
#: Share of the training steps spent warming up (``"linear"``, ``"cosine"``).
WARMUP = 0.1


def schedule_factor(kind: str, step: int, total: int, warmup: float = WARMUP) -> float:
    """The rate factor at training step ``step`` (0-based) of ``total``; never 0."""
    if kind == "constant" or total <= 1:
        return 1.0
    warm = max(1, round(warmup * total))
    step = min(step, total - 1)
    if step < warm:
        return (step + 1) / (warm + 1)
    done = (step - warm + 1) / (total - warm + 1)  # in (0, 1): the last step keeps a little
    if kind == "linear":
        return 1.0 - done
    return 0.5 * (1.0 + math.cos(math.pi * done))


class LRSchedule(Callback):
    """Scale every optimizer group's rate by :func:`schedule_factor` before each batch."""

    def __init__(self) -> None:
        self.batch_ = 0
        self.steps_per_epoch_ = 1

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        self.batch_ = 0
        size = net.batch_size
        n = len(dataset_train) if dataset_train is not None else 1
        self.steps_per_epoch_ = 1 if size in (None, -1) else max(1, math.ceil(n / size))

    def on_batch_begin(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        kind = getattr(net, "lr_schedule", None) or "constant"
        # a span (first epoch, epochs) set by a caller runs the schedule afresh over those
        # epochs (skft.Compressed's recovery epochs after pruning)
        start, epochs = getattr(net, "schedule_span_", None) or (0, net.max_epochs)
        epoch = len(net.history) - 1 - start
        step = epoch * self.steps_per_epoch_ + self.batch_
        self.batch_ += 1
        factor = schedule_factor(kind, step, epochs * self.steps_per_epoch_)
        for group in net.optimizer_.param_groups:
            old = group.get("schedule_factor", 1.0)
            if factor != old:
                group["lr"] *= factor / old
                group["schedule_factor"] = factor
