"""Default plugin: the ``linear`` and ``mlp`` heads, and their search-space entries.

A head factory takes the backbone's feature size and the number of outputs (plus the
estimator's ``head__*`` parameters) and returns the module that maps features to outputs.
``linear`` is the backbone's default head (a ``Linear`` layer unless the backbone spec
names another); ``mlp`` is the classic transfer-learning head, ``Dense(1024) + Dense(k)``:
``layers`` hidden layers of width ``hidden``, each followed by ReLU and dropout.
"""

from __future__ import annotations

import numbers
from typing import Any

from ..hookspecs import hookimpl

__all__ = ["mlp_head", "register_heads", "search_space"]


def linear_head(in_features: int, n_outputs: int):
    from torch import nn

    return nn.Linear(in_features, n_outputs)


def mlp_head(
    in_features: int, n_outputs: int, hidden: int = 1024, dropout: float = 0.5, layers: int = 1
):
    """``layers`` x (Linear(hidden) -> ReLU -> Dropout(dropout)), then Linear(n_outputs)."""
    from torch import nn

    if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
        raise ValueError(f"head__hidden must be an int >= 1, got {hidden!r}")
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral) or layers < 1:
        raise ValueError(f"head__layers must be an int >= 1, got {layers!r}")
    if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"head__dropout must be a float in [0, 1), got {dropout!r}")
    blocks: list[Any] = []
    width = in_features
    for _ in range(int(layers)):
        blocks += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(float(dropout))]
        width = int(hidden)
    return nn.Sequential(*blocks, nn.Linear(width, n_outputs))


@hookimpl
def register_heads(register) -> None:
    register("linear", linear_head)
    register("mlp", mlp_head)


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    """``head__hidden`` and ``head__dropout`` when the estimator's head is ``mlp``."""
    if estimator.get_params(deep=False).get("head") != "mlp":
        return None
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    return {
        "head__hidden": CategoricalDistribution([256, 512, 1024]),
        "head__dropout": FloatDistribution(0.0, 0.7),
    }
