"""Default plugin: the built-in Optuna search space of skft's estimators.

* the core: ``lr`` log-uniform in [1e-5, 1e-1];
* the backbone: ``frozen_depth`` over its own layer groups, ``0 .. n-1`` and
  ``"all"`` (which freezes all ``n``);
* the augmenter: ``augment_strength`` uniform in [0, 1] (unless ``augment="none"``).

The parameters of freezing policies and augmenters (``freeze__lr_decay``,
``augment__num_ops``, ...) come from the ``search_space`` hook of the plugin
that registered them (:mod:`skft.builtin.freezers`, :mod:`skft.builtin.randaugment`).

Nothing here imports optuna or torch until the hook is called.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..warn import warn_at_caller

__all__ = ["LR_RANGE", "layer_group_count", "search_space"]

#: The default learning-rate range (log-uniform).
LR_RANGE = (1e-5, 1e-1)

_GROUP_COUNTS: dict[tuple[str, tuple[int, ...]], int] = {}


def _probe_shape(spec: Any, image_size: Any) -> tuple[int, ...]:
    if spec.input_kind == "image":
        size = int(image_size or spec.default_image_size or 32)
        return (3, size, size)
    if spec.input_kind == "tabular":
        return (1,)  # the group structure does not depend on the feature count
    return ()


def layer_group_count(spec: Any, image_size: Any = None) -> int:
    """How many layer groups ``spec`` builds: ``spec.n_groups`` when declared, else counted.

    Counting builds the backbone once without weights (cached per name and input shape).
    """
    if spec.n_groups is not None:
        return int(spec.n_groups)
    shape = _probe_shape(spec, image_size)
    key = (spec.name, shape)
    if key not in _GROUP_COUNTS:
        _GROUP_COUNTS[key] = len(spec.build(False, shape).groups)
    return _GROUP_COUNTS[key]


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from ..augment import augmentation_on
    from ..params.defaults import effective
    from ..params.plan import adds_adapters
    from ..plugins import get_backbone

    params = estimator.get_params(deep=False)
    if not {"backbone", "frozen_depth", "lr"} <= set(params):
        return None  # not an skft estimator
    space: dict[str, Any] = {"lr": FloatDistribution(*LR_RANGE, log=True)}
    spec = get_backbone(params["backbone"])
    try:
        n_groups = layer_group_count(spec, params.get("image_size"))
    except Exception as exc:  # noqa: BLE001 - a plugin's build failing must not stop the search
        warn_at_caller(
            f"frozen_depth left out of the default search space: building backbone "
            f"{spec.name!r} without weights to count its layer groups failed: {exc}"
        )
    else:
        # adapter policies (LoRA, ...) need a group to adapt: "all" would leave none
        probe = [] if adds_adapters(params.get("freeze")) else ["all"]
        space["frozen_depth"] = CategoricalDistribution([*range(n_groups), *probe])
    augment = effective(estimator, "augment")  # None: the backbone's default
    if "augment" in params and augmentation_on(augment):
        space["augment_strength"] = FloatDistribution(0.0, 1.0)
    return space
