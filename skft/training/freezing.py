"""Freezing at run time: policy names to objects, and the per-epoch schedule callback."""

from __future__ import annotations

from typing import Any

from skorch.callbacks import Callback

from ..plugins import freezers, instantiate
from ..specs import FreezePolicy

__all__ = ["FreezeSchedule", "build_freezer"]


def build_freezer(freeze: str, params: dict[str, Any]) -> FreezePolicy:
    """The freezing policy registered as ``freeze`` (a name or an alias), built with ``params``.

    ``params`` are the estimator's ``freeze__*`` parameters without the prefix
    (``estimator.get_params_for("freeze")``). Unknown names raise
    :class:`skft.UnknownNameError` listing close matches; parameters the
    factory does not take raise ``TypeError`` naming them as ``freeze__<param>``;
    a factory that returns something not callable raises ``TypeError``.
    Policies need not subclass :class:`~skft.specs.FreezePolicy`: any callable
    ``(groups, frozen_depth, epoch) -> FreezeState`` is returned as it is.
    """
    policy = instantiate(freezers().get(freeze), params, f"freeze={freeze!r}", "freeze__")
    if not callable(policy):
        raise TypeError(
            f"freeze={freeze!r}: the registered factory returned {type(policy).__name__}, "
            "not a callable (groups, frozen_depth, epoch) -> FreezeState"
        )
    return policy


class FreezeSchedule(Callback):
    """Apply the freezing policy's state at the start of every epoch.

    Trainable flags and BatchNorm modes go to the module; learning-rate
    factors to the optimizer's per-group rates (the optimizer is built once,
    so groups keep their state when the policy unfreezes more of them).
    """

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        module = getattr(net.module_, "module", net.module_)  # inside DistributedDataParallel
        state = net.freeze_policy_(module.group_names, net.frozen_depth_, len(net.history) - 1)
        if state == net.freeze_state_:
            return
        module.apply_freeze_state(state)
        factors = dict(zip(module.group_names, state.lr_factors))
        for group in net.optimizer_.param_groups:
            new = factors.get(group.get("name"), group["lr_factor"])  # the head keeps its own
            if new != group["lr_factor"]:
                group["lr"] *= new / group["lr_factor"]
                group["lr_factor"] = new
        net.freeze_state_ = state
        net.prefix_keys_ = {}  # weights that were frozen may train now
