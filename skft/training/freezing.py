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
    """Ask the freezing policy for its state at the start of every epoch; when it changes,
    the estimator applies it (``change_freeze_state``: module flags, per-group rates)."""

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        module = getattr(net.module_, "module", net.module_)  # inside DistributedDataParallel
        state = net.freeze_policy_(module.group_names, net.frozen_depth_, len(net.history) - 1)
        if state != net.freeze_state_:
            net.change_freeze_state(state)
