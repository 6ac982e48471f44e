"""The default Optuna search space, collected from plugins through the ``search_space`` hook.

A plugin contributes entries for the freezing policies and augmenters it
registered from its own ``search_space`` hook; :func:`chosen_freezer` and
:func:`chosen_augmenters` tell it which factories an estimator names, and
under which ``freeze__``/``augment__`` prefix their parameters go::

    @hookimpl
    def search_space(estimator):
        return {
            prefix + "magnitude": IntDistribution(1, 10)
            for prefix, factory in chosen_augmenters(estimator)
            if factory is MyAugment
        }
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..plugins import augmenters, freezers, load_plugins, pm

__all__ = [
    "as_distribution",
    "chosen_augmenters",
    "chosen_freezer",
    "default_search_space",
    "merge_search_space",
    "suggest",
]


def as_distribution(name: str, value: Any):
    """An Optuna distribution from a distribution or a list/tuple of choices."""
    from optuna.distributions import BaseDistribution, CategoricalDistribution

    if isinstance(value, BaseDistribution):
        return value
    if isinstance(value, (list, tuple)):
        return CategoricalDistribution(list(value))
    raise TypeError(
        f"param_distributions[{name!r}] must be an optuna distribution or a list of "
        f"choices, got {type(value).__name__}"
    )


def chosen_freezer(estimator: Any) -> Callable[..., Any] | None:
    """The registered factory of the estimator's ``freeze=`` policy (``None``: no ``freeze``;
    ``freeze=None``: the backbone's static default, before any data is seen).

    Its parameters are ``freeze__<param>``. Unknown names raise
    :class:`skft.UnknownNameError`.
    """
    from ..params.defaults import effective

    params = estimator.get_params(deep=False)
    if "freeze" not in params:
        return None
    name = effective(estimator, "freeze")  # None: the backbone's static default ("depth")
    return None if name is None else freezers().get(name)


def chosen_augmenters(estimator: Any) -> list[tuple[str, Callable[..., Any]]]:
    """``(parameter prefix, registered factory)`` for each augmenter ``augment=`` names.

    One name: ``[("augment__", factory)]``; a composition (``"basic+mixup"``
    or a list) routes parameters by component name, so
    ``[("augment__basic__", ...), ("augment__mixup__", ...)]`` (see
    :mod:`skft.augment`). ``[]`` when the estimator has no ``augment``.
    Unknown names raise :class:`skft.UnknownNameError`.
    """
    params = estimator.get_params(deep=False)
    if "augment" not in params:
        return []
    from ..params.defaults import effective

    augment = effective(estimator, "augment")  # None: the backbone's default
    from ..augment import parse_augment  # imports torch: only for estimators with ``augment``

    names = parse_augment(augment)
    registry = augmenters()
    if len(names) == 1 and isinstance(augment, str):
        return [("augment__", registry.get(names[0]))]
    return [(f"augment__{name}__", registry.get(name)) for name in names]


def default_search_space(estimator: Any) -> dict[str, Any]:
    """Every plugin's ``search_space`` answer for ``estimator``, merged.

    Later-registered plugins override earlier ones (skft's own entries come
    from a default plugin, registered first).
    """
    load_plugins()
    answers = pm.hook.search_space(estimator=estimator)
    space: dict[str, Any] = {}
    for answer in reversed(answers):  # pluggy calls the last registered first
        if answer:
            space.update({k: as_distribution(k, v) for k, v in answer.items()})
    return space


def merge_search_space(
    estimator: Any, param_distributions: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The default space, overridden and extended by ``param_distributions``.

    A value of ``None`` removes that parameter from the default space.
    """
    space = default_search_space(estimator)
    for name, value in (param_distributions or {}).items():
        if value is None:
            space.pop(name, None)
        else:
            space[name] = as_distribution(name, value)
    if not space:
        raise ValueError(
            f"the search space for {type(estimator).__name__} is empty: no plugin "
            "contributes defaults for it; pass param_distributions"
        )
    return space


def suggest(trial: Any, name: str, distribution: Any) -> Any:
    """``trial.suggest_*`` for any Optuna distribution."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    d = distribution
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    return trial._suggest(name, d)  # deprecated distribution classes
