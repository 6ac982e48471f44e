"""Default plugin: the ``linear`` and ``mlp`` heads, and their search-space entries.

A head factory takes the backbone's feature size and the number of outputs (plus the
estimator's ``head__*`` parameters) and returns the module that maps features to outputs.
``linear`` is the backbone's default head (a ``Linear`` layer unless the backbone spec
names another); ``mlp`` is the classic transfer-learning head, ``Dense(1024) + Dense(k)``:
``layers`` hidden layers of width ``hidden``, each followed by ReLU and dropout.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..params.constraints import Integral, Interval, Real, check_parameters

__all__ = ["mlp_head", "register_heads", "search_space"]


def linear_head(in_features: int, n_outputs: int):
    from torch import nn

    return nn.Linear(in_features, n_outputs)


def mlp_head(
    in_features: int, n_outputs: int, hidden: int = 1024, dropout: float = 0.5, layers: int = 1
):
    """``layers`` x (Linear(hidden) -> ReLU -> Dropout(dropout)), then Linear(n_outputs)."""
    from torch import nn

    values = {"hidden": hidden, "dropout": dropout, "layers": layers}
    check_parameters(mlp_head._parameter_constraints, values, "head__")
    blocks: list[Any] = []
    width = in_features
    for _ in range(int(layers)):
        blocks += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(float(dropout))]
        width = int(hidden)
    return nn.Sequential(*blocks, nn.Linear(width, n_outputs))


mlp_head._parameter_constraints = {
    "hidden": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "layers": [Interval(Integral, 1, None, closed="left")],
}


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
