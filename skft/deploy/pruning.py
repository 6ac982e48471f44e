"""Structured pruning of a fitted estimator's network, and its recovery epochs.

:func:`prune_module` removes channels (or attention heads and feed-forward width)
with torch-pruning; the estimator's own ``recovering`` context sets it up for the short
re-tuning that follows (its schedule afresh, frozen groups re-tuned on request), with
:class:`Distillation` from the unpruned network as an extra loss term;
:func:`recalibrate_batchnorm` recomputes the BatchNorm statistics afterwards.
:class:`skft.Compressed` uses them.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from sklearn.base import is_classifier
from torch import nn

from ..network import FineTuneModule
from ..specs import Prunable
from .onnx_export import InferenceGraph

__all__ = ["Distillation", "frozen_groups", "prune_module", "recalibrate_batchnorm"]


#: Softening temperature of the distillation targets (Hinton et al. 2015).
DISTILL_TEMPERATURE = 2.0


class Distillation:
    """A loss term for the recovery epochs: the unpruned ``teacher``'s outputs, by ``weight``.

    Passed to the estimator's :meth:`~skft.base.FineTuneMixin.recovering`, which owns it
    for those epochs: on each training batch, ``loss`` becomes ``(1 - weight) * loss +
    weight * term``, where ``term`` compares the student's outputs with the teacher's on
    the batch the student sees (augmented, or the cached features of the frozen groups
    both share: ``start=est.input_depth_``): temperature-softened KL divergence for
    classes, per-label sigmoid cross-entropy for multi-label, MSE for regression.
    """

    def __init__(self, teacher: nn.Module, weight: float) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.weight = float(weight)

    def __call__(self, est: Any, loss: torch.Tensor, y_pred: torch.Tensor, X: Any) -> Any:
        from skorch.utils import to_tensor

        temperature = DISTILL_TEMPERATURE
        with torch.no_grad():
            target = self.teacher(to_tensor(X, device=y_pred.device), start=est.input_depth_)
        classifier = is_classifier(est)
        if classifier and getattr(est, "multilabel_", False):  # one sigmoid per label
            soft = nn.functional.binary_cross_entropy_with_logits(
                y_pred / temperature, torch.sigmoid(target.to(y_pred.dtype) / temperature)
            )
            term = soft * temperature**2
        elif classifier:
            soft = nn.functional.kl_div(
                nn.functional.log_softmax(y_pred / temperature, dim=-1),
                nn.functional.log_softmax(target / temperature, dim=-1),
                reduction="batchmean",
                log_target=True,
            )
            term = soft * temperature**2
        else:
            term = nn.functional.mse_loss(y_pred, target.to(y_pred.dtype))
        return (1.0 - self.weight) * loss + self.weight * term


def recalibrate_batchnorm(
    module: nn.Module, X: torch.Tensor, device: Any, batch: int = 64, keep: Any = ()
) -> int:
    """Recompute every BatchNorm's running statistics on ``X`` (precise BN); the layers found.

    BatchNorms inside the modules of ``keep`` (layer groups left unpruned and
    frozen) keep their statistics.

    Pruning changes what each BatchNorm sees, and a few recovery epochs move the running
    averages too little (measured: a pruned EfficientNet-Lite0 classified its own training
    digits at 0.915 in train mode, 0.115 in eval mode). One pass over ``X`` in train mode,
    without gradients and with a cumulative average, makes eval mode match again.
    """
    kept = {id(m) for k in keep for m in k.modules()}
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in kept
    ]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch counts the same
    module.eval()
    for m in norms:
        m.train()  # only the statistics: dropout stays off
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch):
                module(X[start : start + batch].to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        module.__dict__.pop("_applied_mode", None)  # FineTuneModule: re-apply modes next time
        module.train(was_training)
    return len(norms)


def frozen_groups(est: Any) -> list[int]:
    """Indices of the layer groups ``est`` kept frozen (in its last epoch)."""
    return [i for i, trainable in enumerate(est.freeze_state_.trainable) if not trainable]


def prune_module(
    module: FineTuneModule,
    example: torch.Tensor,
    ratio: float,
    round_to: int | None = None,
    keep_groups: Any = (),
) -> dict[str, list]:
    """Remove ``ratio`` of each prunable layer's channels by magnitude, in place.

    torch-pruning traces the module on ``example`` (one adapted input) and
    groups coupled layers (a conv, its batch norm, the next layer's input,
    residual sums). The head's outputs are never pruned; ``round_to`` keeps channel
    counts multiples of it; the layers of the groups in ``keep_groups`` (indices)
    keep their width. Layer groups may describe their structure with
    :class:`skft.specs.PruningHints` (transformer layers: whole attention heads and
    feed-forward width go, the residual stream keeps its width). Groups that touch a
    parameter torch-pruning has no pruning rule for (``nn.Parameter`` held by
    a custom layer) are left alone. Returns the names of those layers
    (``unhandled_layers``) and of every layer with parameters whose shapes did
    not change (``unpruned_layers``).
    """
    import torch_pruning as tp

    graph = InferenceGraph(module)
    names = {m: n for n, m in graph.named_modules()}
    shapes = {n: _shapes(m) for m, n in names.items() if _shapes(m)}
    param_owner = {p: n.rsplit(".", 1)[0] for n, p in graph.named_parameters()}
    device = next(module.parameters()).device
    example = example.to(device).float()
    was_training = module.training
    module.eval().requires_grad_(True)  # DepGraph traces autograd: frozen layers too
    hints = [m.pruning_hints() for m in graph.modules() if isinstance(m, Prunable)]
    ignored = [graph.head] + [layer for h in hints for layer in h.ignored_layers]
    kept = [module.groups[i] for i in keep_groups]
    ignored += [m for g in kept for m in g.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    num_heads = {layer: n for h in hints for layer, n in h.num_heads.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unwrapped parameters": reported as unhandled_layers
        pruner = tp.pruner.MetaPruner(
            graph,
            example,
            importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=ignored,
            round_to=None if num_heads else round_to,  # heads: whole heads, not multiples
            num_heads=num_heads,
            prune_num_heads=bool(num_heads),
            prune_head_dims=False,  # a head keeps its size; the number of heads shrinks
            head_pruning_ratio=ratio,
        )
    unhandled = {id(u.parameters) for u in pruner.DG.unwrapped_parameters}
    unhandled_layers = sorted({param_owner[p] for p in param_owner if id(p) in unhandled})
    for group in pruner.step(interactive=True):
        touched = {id(dep.target.module) for dep, _ in group}
        if not touched & unhandled:
            group.prune()
    for h in hints:
        if h.after is not None:
            h.after()
    module.train(was_training)
    unpruned = [n for m, n in names.items() if n in shapes and _shapes(m) == shapes[n]]
    return {"unhandled_layers": unhandled_layers, "unpruned_layers": sorted(unpruned)}


def _shapes(module: nn.Module) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(p.shape) for p in module.parameters(recurse=False))
