"""Data-parallel fits on several GPUs or machines through Hugging Face Accelerate.

skorch integrates Accelerate with :class:`skorch.hf.AccelerateMixin`; these
estimators are skft's with that mixin and nothing else of their own: the
processes, the gradient all-reduce (``DistributedDataParallel``), the
sharding of batches and mixed precision are Accelerate's. Write a script
that fits one and start it with ``accelerate launch``::

    from accelerate import Accelerator
    from skft.training.accelerated import AcceleratedClassifier

    clf = AcceleratedClassifier("resnet18", accelerator=Accelerator(), max_epochs=5)
    clf.fit(paths, labels)            # every process runs the same script

    accelerate launch --multi_gpu --num_processes 4 train.py     # 4 GPUs, one machine
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train.py  # 2 CPU
                                                                  # processes (gloo)

(``accelerate launch --cpu`` starts one process unless MPI runs it; ``--multi_gpu``
starts the processes with torchrun and ``ACCELERATE_USE_CPU=1`` keeps them on the CPU.)

Each process draws its own shard of every batch (``batch_size`` samples per
process, unless ``Accelerator(split_batches=True)`` splits ``batch_size``
between them: ``Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))``),
so all processes end with the same weights. Differences from
the plain estimators, all because of ``accelerate``:

- ``device=None``: Accelerate places the module and the batches;
- batches come from ``torch.utils.data.DataLoader`` (``iterator_train`` and
  ``iterator_valid``), which Accelerate knows how to shard; streamed image
  files work the same way;
- ``precision="fp32"`` by default: mixed precision is
  ``Accelerator(mixed_precision="bf16")``'s;
- ``feature_cache=False``: the cached prefix would run outside the
  distributed wrapper.

See ``examples/accelerate_fit.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from skorch.hf import AccelerateMixin
from torch.utils.data import DataLoader

from ..augment import augment_batch
from ..estimators import FineTunedClassifier, FineTunedRegressor

__all__ = ["AcceleratedClassifier", "AcceleratedRegressor"]

_DEFAULTS: dict[str, Any] = {
    "device": None,
    "iterator_train": DataLoader,
    "iterator_valid": DataLoader,
    "iterator_train__shuffle": True,
    "precision": "fp32",
    "feature_cache": False,
}


class _Accelerated(AccelerateMixin):
    def __init__(self, backbone: str = "resnet18", *, accelerator, **kwargs: Any) -> None:
        super().__init__(backbone, accelerator=accelerator, **{**_DEFAULTS, **kwargs})

    def _initialize_accelerator(self):
        # accelerate wraps every module it prepares in DistributedDataParallel, which refuses
        # a loss without trainable parameters (huggingface/accelerate#760): such criteria are
        # only moved to the accelerator's device
        criteria = self._criteria
        trained = [n for n in criteria if _has_trainable(getattr(self, n + "_", None))]
        for name in set(criteria) - set(trained):
            criterion = getattr(self, name + "_", None)
            if isinstance(criterion, torch.nn.Module):
                criterion.to(self.accelerator.device)
        self._criteria = trained
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def train_step_single(self, batch, **fit_params):
        # AccelerateMixin's step (autocast, accelerator.backward) on skft's augmented batch
        return AccelerateMixin.train_step_single(self, augment_batch(self, batch), **fit_params)


def _has_trainable(module: Any) -> bool:
    return isinstance(module, torch.nn.Module) and any(p.requires_grad for p in module.parameters())


class AcceleratedClassifier(_Accelerated, FineTunedClassifier):
    """:class:`skft.FineTunedClassifier` trained data-parallel by ``accelerator``."""


class AcceleratedRegressor(_Accelerated, FineTunedRegressor):
    """:class:`skft.FineTunedRegressor` trained data-parallel by ``accelerator``."""
