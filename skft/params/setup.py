"""What a fit (or a prediction) does, decided once: :class:`FitSetup`.

Before skorch code runs, the estimator resolves its parameters, its fitted objects
(backbone spec, input kind, freezing policy, augmenter, head) and the fit plan into one
frozen :class:`FitSetup`, ``setup_``. The parts that act during the fit read their
decision from it instead of working it out again from the estimator's parameters:

=========================  ===============================================================
reader                     reads
=========================  ===============================================================
``augment_batch``          ``augmenting``, ``augmenter``, ``augment_strength``,
                           ``input_kind``
frozen-prefix cache        ``cache_in_training`` (``feature_cache``: the parameter and a
                           cacheable input kind; and no augmentation: augmented inputs
                           differ between epochs)
speed paths                ``device``, ``autocast`` (the dtype ``precision`` means there),
                           ``grad_scaler`` (fp16), ``channels_last``
prediction                 ``feature_cache``, ``device``, ``autocast``
=========================  ===============================================================

The estimator decides at the start of each fit, ``partial_fit`` and prediction (its
``holding_resolved``, outermost entry) and again when its module is (re)built, since
channels-last depends on the layers. A parameter changed while a fit runs (by a
callback, say) takes effect at the next fit, not half-way through this one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from ..augment import augmentation_on
from .defaults import effective

__all__ = ["CHANNELS_LAST_DEVICES", "FitSetup", "decide"]

#: Device types whose convolutional backbones run in channels-last format.
CHANNELS_LAST_DEVICES = ("cuda",)

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def device_type(device: Any) -> str:
    """``"cuda"``, ``"cpu"``, ... for a device name or object (``None``: ``"cpu"``)."""
    return torch.device(device).type if device is not None else "cpu"


def autocast_dtype(precision: str, device: Any, cuda_precision: str = "bf16") -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device``; ``None``: fp32, no autocast.

    ``"auto"`` is ``cuda_precision`` (the backbone spec's: ``"bf16"`` or ``"fp32"``) on a
    CUDA device that supports bf16, and fp32 everywhere else.
    """
    if precision == "auto":
        cuda = device_type(device) == "cuda" and torch.cuda.is_available()
        if not (cuda and cuda_precision == "bf16" and torch.cuda.is_bf16_supported()):
            return None
        return torch.bfloat16
    try:
        return _DTYPES[precision]
    except KeyError:
        raise ValueError(
            f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}"
        ) from None


@dataclass(frozen=True)
class FitSetup:
    """One fit's decisions (module docstring); the estimator's ``setup_``."""

    spec: Any
    input_kind: Any
    freeze_policy: Any
    augmenter: Any
    #: ``(in_features, n_outputs) -> nn.Module``
    head: Any
    #: the fit plan (:class:`skft.params.plan.FitPlan`); ``None`` for a model made without one
    plan: Any
    #: the effective ``augment`` (``None`` replaced by the plan's value)
    augment: Any
    augment_strength: float
    #: training batches are augmented
    augmenting: bool
    #: frozen-prefix features may be cached (:mod:`skft.training.cache`): the parameter on
    #: and a cacheable input kind (training also needs ``not augmenting``: see
    #: :attr:`cache_in_training`)
    feature_cache: bool
    #: the resolved device (``"auto"`` replaced)
    device: Any
    #: autocast dtype of forward passes; ``None``: fp32
    autocast: torch.dtype | None
    #: weights and image batches in ``torch.channels_last`` memory format
    channels_last: bool

    @property
    def cache_in_training(self) -> bool:
        """Training inputs may come from the cache: augmented inputs differ between epochs."""
        return self.feature_cache and not self.augmenting

    @property
    def grad_scaler(self) -> bool:
        """fp16 autocast: the loss is scaled (``torch.amp.GradScaler``)."""
        return self.autocast is torch.float16

    def __str__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["spec"], shown["input_kind"] = self.spec.name, self.input_kind.name
        shown["freeze_policy"] = type(self.freeze_policy).__name__
        shown["augmenter"] = type(self.augmenter).__name__
        for name in ("head", "plan"):
            shown.pop(name)
        width = max(map(len, shown))
        return "\n".join(["fit setup"] + [f"  {k:<{width}} = {v!r}" for k, v in shown.items()])


def _channels_last(device: Any, kind: Any, module: nn.Module | None) -> bool:
    if device_type(device) not in CHANNELS_LAST_DEVICES or kind.name != "image":
        return False
    return module is not None and any(isinstance(m, nn.Conv2d) for m in module.modules())


def decide(estimator: Any) -> FitSetup | None:
    """``estimator``'s setup from its parameters (values held: device, plan) and fitted
    objects; ``None`` before its names are looked up (no ``backbone_spec_`` yet).

    Reads only; the estimator keeps the result.
    """
    state = vars(estimator)
    if "backbone_spec_" not in state:
        return None
    kind = state["input_kind_"]
    augment = effective(estimator, "augment")
    strength = float(estimator.augment_strength)
    augmenting = augmentation_on(augment, strength) and kind.name in state["augmenter_"].input_kinds
    device = estimator.device
    module = state.get("module_")
    return FitSetup(
        spec=state["backbone_spec_"],
        input_kind=kind,
        freeze_policy=state["freeze_policy_"],
        augmenter=state["augmenter_"],
        head=state.get("head_factory_"),
        plan=state.get("fit_plan_"),
        augment=augment,
        augment_strength=strength,
        augmenting=augmenting,
        feature_cache=bool(estimator.feature_cache) and kind.cacheable,
        device=device,
        autocast=autocast_dtype(
            getattr(estimator, "precision", "fp32"), device, state["backbone_spec_"].cuda_precision
        ),
        channels_last=_channels_last(device, kind, getattr(module, "module", module)),
    )
