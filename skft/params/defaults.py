"""What ``None`` means for ``lr``, ``batch_size``, ``frozen_depth``, ...: the fit plan's values.

Estimator parameters listed in :data:`skft.params.plan.PLANNED` default to ``None``,
meaning "let skft decide": :func:`skft.params.plan.plan_fit` resolves them at the start
of a fit from the backbone's declared defaults and the training data, and the
fitted estimator keeps the result as ``fit_plan_`` (``resolved_params_``: the
values). Before a fit (a search space being built, say) the backbone's static
defaults stand in (:func:`training_defaults`).

As with ``device="auto"``, the parameter keeps ``None`` (so ``get_params``, ``clone``
and pickles stay data-independent); the estimator's own ``holding_resolved()`` holds
the values :func:`held_values` gives in the instance while skorch code, which reads
``self.lr``, ``self.batch_size``, ..., runs.
"""

from __future__ import annotations

from typing import Any

from ..training.device import resolve_device
from .plan import CORE_DEFAULTS, PLANNED, static_defaults

__all__ = [
    "BACKBONE_DEFAULTED",
    "CORE_DEFAULTS",
    "effective",
    "effective_params_for",
    "held_values",
    "training_defaults",
]

#: Estimator parameters whose ``None`` means "the plan's value" (see :mod:`skft.params.plan`).
BACKBONE_DEFAULTED = PLANNED


def training_defaults(backbone: Any) -> dict[str, Any]:
    """The static defaults of ``backbone`` (a name or a spec): core values updated by the spec's."""
    from ..plugins import get_backbone
    from ..specs import BackboneSpec

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


def held_values(net: Any) -> dict[str, Any]:
    """What ``net`` holds while skorch code runs (``FineTuneMixin.holding_resolved``).

    The resolved device for ``device="auto"``, and for each parameter of
    :data:`BACKBONE_DEFAULTED` that is ``None``: the fit plan's value, or before a fit
    the backbone's static defaults. Empty when everything is already concrete (so the
    estimator's holding is reentrant).
    """
    held: dict[str, Any] = {}
    raw = net.__dict__.get("device")
    resolved = resolve_device(raw)
    if resolved != raw:
        held["device"] = resolved
    unset = [n for n in BACKBONE_DEFAULTED if n in net.__dict__ and net.__dict__[n] is None]
    if unset:
        values = _resolved(net)
        if values is None:
            spec = net.__dict__.get("backbone_spec_")
            if spec is None or spec.name != net.backbone:
                spec = net.backbone
            values = training_defaults(spec)
        held.update((name, values[name]) for name in unset)
    return held
