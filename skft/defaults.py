"""Training defaults that suit the backbone: what ``None`` means for ``lr``, ``batch_size``, ...

Estimator parameters listed in :data:`BACKBONE_DEFAULTED` default to ``None``,
meaning "the backbone's recommended value": the spec's
:attr:`~skft.specs.BackboneSpec.defaults` where it declares one, else
:data:`CORE_DEFAULTS` (the values image backbones have always used). A
transformer encoder declares e.g. ``lr=5e-5, batch_size=16,
head_lr_factor=20`` (the new head trains at ``lr * 20``), while CNNs keep
``lr=1e-3, batch_size=32``. A value the user sets always wins; ``lr="find"``
still runs the learning-rate range test.

As with ``device="auto"`` (:func:`skft.training.device.holding_resolved_device`), the
parameter keeps ``None`` (so ``get_params``, ``clone`` and pickles stay
backbone-independent); :func:`holding_resolved` holds the resolved values
in the instance while skorch code runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .training.device import holding_resolved_device

__all__ = [
    "BACKBONE_DEFAULTED",
    "CORE_DEFAULTS",
    "effective",
    "holding_defaults",
    "holding_resolved",
    "training_defaults",
]

#: What ``None`` means when the backbone declares nothing (image backbones).
CORE_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "batch_size": 32,
    "max_epochs": 10,
    "augment": "basic",
    "max_length": 128,
    "head_lr_factor": 1.0,
    "lr_schedule": "constant",
}

#: Estimator parameters whose ``None`` means the backbone's default.
BACKBONE_DEFAULTED = ("lr", "batch_size", "max_epochs", "augment", "max_length", "lr_schedule")


def training_defaults(backbone: Any) -> dict[str, Any]:
    """The defaults of ``backbone`` (a name or a spec): core values updated by the spec's."""
    from .plugins import get_backbone
    from .specs import BackboneSpec

    spec = backbone if isinstance(backbone, BackboneSpec) else get_backbone(backbone)
    unknown = set(spec.defaults) - set(CORE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"backbone {spec.name!r} declares unknown training defaults {sorted(unknown)}; "
            f"known: {sorted(CORE_DEFAULTS)}"
        )
    return {**CORE_DEFAULTS, **spec.defaults}


def effective(estimator: Any, name: str) -> Any:
    """``estimator``'s parameter ``name``, or its backbone's default when it is ``None``."""
    value = estimator.get_params(deep=False).get(name)
    if value is not None or name not in CORE_DEFAULTS:
        return value
    try:
        return training_defaults(estimator.get_params(deep=False)["backbone"])[name]
    except (ValueError, TypeError, KeyError):  # an unknown backbone: fit will say so
        return CORE_DEFAULTS[name]


@contextmanager
def holding_defaults(net: Any) -> Iterator[None]:
    """Hold the backbone's defaults in ``net``'s ``None`` parameters (reentrant)."""
    unset = [n for n in BACKBONE_DEFAULTED if n in net.__dict__ and net.__dict__[n] is None]
    if not unset:
        yield
        return
    spec = net.__dict__.get("backbone_spec_")
    if spec is None or spec.name != net.backbone:
        spec = net.backbone
    defaults = training_defaults(spec)
    for name in unset:
        net.__dict__[name] = defaults[name]
    try:
        yield
    finally:
        for name in unset:
            net.__dict__[name] = None


@contextmanager
def holding_resolved(net: Any) -> Iterator[None]:
    """The resolved device and the backbone's training defaults, held while skorch runs."""
    with holding_resolved_device(net), holding_defaults(net):
        yield
