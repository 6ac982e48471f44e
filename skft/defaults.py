"""What ``None`` means for ``lr``, ``batch_size``, ``frozen_depth``, ...: the fit plan's values.

Estimator parameters listed in :data:`skft.plan.PLANNED` default to ``None``,
meaning "let skft decide": :func:`skft.plan.plan_fit` resolves them at the start
of a fit from the backbone's declared defaults and the training data, and the
fitted estimator keeps the result as ``fit_plan_`` (``resolved_params_``: the
values). Before a fit (a search space being built, say) the backbone's static
defaults stand in (:func:`training_defaults`).

As with ``device="auto"`` (:func:`skft.training.device.holding_resolved_device`), the
parameter keeps ``None`` (so ``get_params``, ``clone`` and pickles stay
data-independent); :func:`holding_resolved` holds the resolved values in the
instance while skorch code, which reads ``self.lr``, ``self.batch_size``, ..., runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .plan import CORE_DEFAULTS, PLANNED, static_defaults
from .training.device import holding_resolved_device

__all__ = [
    "BACKBONE_DEFAULTED",
    "CORE_DEFAULTS",
    "effective",
    "effective_params_for",
    "holding_defaults",
    "holding_resolved",
    "training_defaults",
]

#: Estimator parameters whose ``None`` means "the plan's value" (see :mod:`skft.plan`).
BACKBONE_DEFAULTED = PLANNED


def training_defaults(backbone: Any) -> dict[str, Any]:
    """The static defaults of ``backbone`` (a name or a spec): core values updated by the spec's."""
    from .plugins import get_backbone
    from .specs import BackboneSpec

    spec = backbone if isinstance(backbone, BackboneSpec) else get_backbone(backbone)
    return static_defaults(spec)


def _resolved(estimator: Any) -> dict[str, Any] | None:
    plan = estimator.__dict__.get("fit_plan_")
    return None if plan is None else dict(plan.values)


def effective(estimator: Any, name: str) -> Any:
    """``estimator``'s parameter ``name``, or the value the plan gives its ``None``.

    After a fit: the fit plan's value; before: the backbone's static default.
    """
    value = estimator.get_params(deep=False).get(name)
    if value is not None or name not in CORE_DEFAULTS:
        return value
    resolved = _resolved(estimator)
    if resolved is not None and name in resolved:
        return resolved[name]
    try:
        return training_defaults(estimator.get_params(deep=False)["backbone"])[name]
    except (ValueError, TypeError, KeyError):  # an unknown backbone: fit will say so
        return CORE_DEFAULTS[name]


def effective_params_for(estimator: Any, prefix: str) -> dict[str, Any]:
    """``estimator.get_params_for(prefix)``, with the plan's ``prefix__*`` values under it.

    A rule that picks a policy for a ``None`` parameter may pick some of its parameters
    too (``freeze="contrastive"`` with ``freeze__pair_iterations``); the user's own
    ``prefix__*`` values win.
    """
    own = estimator.get_params_for(prefix)
    resolved = _resolved(estimator) if getattr(estimator, prefix, None) is None else None
    if not resolved:
        return own
    start = f"{prefix}__"
    planned = {k[len(start) :]: v for k, v in resolved.items() if k.startswith(start)}
    return {**planned, **own}


@contextmanager
def holding_defaults(net: Any) -> Iterator[None]:
    """Hold the plan's values (or the backbone's static defaults) in ``net``'s ``None``
    parameters (reentrant)."""
    unset = [n for n in BACKBONE_DEFAULTED if n in net.__dict__ and net.__dict__[n] is None]
    if not unset:
        yield
        return
    values = _resolved(net)
    if values is None:
        spec = net.__dict__.get("backbone_spec_")
        if spec is None or spec.name != net.backbone:
            spec = net.backbone
        values = training_defaults(spec)
    for name in unset:
        net.__dict__[name] = values[name]
    try:
        yield
    finally:
        for name in unset:
            net.__dict__[name] = None


@contextmanager
def holding_resolved(net: Any) -> Iterator[None]:
    """The resolved device and the fit plan's values, held while skorch runs."""
    with holding_resolved_device(net), holding_defaults(net):
        yield
