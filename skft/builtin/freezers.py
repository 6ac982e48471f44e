"""Built-in freezing policies: ``depth``, ``gradual`` and ``lp_ft``.

Every policy takes ``bn`` (BatchNorm handling of frozen groups) and
``lr_decay`` (layer-wise learning-rate decay) as ``freeze__*`` parameters.
This plugin's ``search_space`` hook offers ``freeze__lr_decay`` for all three,
plus ``freeze__every`` (gradual) and ``freeze__probe_epochs`` (lp_ft).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ..hookspecs import hookimpl
from ..params.constraints import Integral, Interval, Real, StrOptions, check_parameters
from ..params.defaults import effective
from ..specs import FreezePolicy, FreezeState

__all__ = ["BN_MODES", "DepthFreezer", "GradualFreezer", "LinearProbeFineTune", "search_space"]

BN_MODES = ("eval", "train")


def _at_least(minimum: int) -> list[Any]:
    return [Interval(Integral, minimum, None, closed="left")]


class DepthFreezer(FreezePolicy):
    """Freeze the first ``frozen_depth`` layer groups for the whole fit.

    Parameters
    ----------
    bn : {"eval", "train"}
        "eval" (default) runs frozen groups in eval mode, so their BatchNorm
        running statistics (and dropout) do not move; "train" lets the
        statistics of frozen groups follow the new data.
    lr_decay : float in (0, 1]
        Layer-wise learning-rate decay: counting groups from the head (the
        head is 0, the last backbone group 1, ...), group ``i`` trains with
        ``lr * lr_decay**i``. 1.0 (default) gives every group the same rate.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "bn": [StrOptions(set(BN_MODES))],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, bn: str = "eval", lr_decay: float = 1.0) -> None:
        check_parameters(self._parameter_constraints, {"bn": bn, "lr_decay": lr_decay}, "freeze__")
        self.bn = bn
        self.lr_decay = float(lr_decay)

    def depth_at(self, n_groups: int, frozen_depth: int, epoch: int) -> int:
        """How many leading groups are frozen at ``epoch`` (0-based)."""
        return frozen_depth

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> FreezeState:
        n = len(groups)
        depth = self.depth_at(n, frozen_depth, epoch)
        trainable = tuple(i >= depth for i in range(n))
        return FreezeState(
            trainable=trainable,
            eval_mode=tuple(not t and self.bn == "eval" for t in trainable),
            lr_factors=tuple(self.lr_decay ** (n - i) for i in range(n)),
        )

    def _extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._extra_repr()}bn={self.bn!r}, lr_decay={self.lr_decay})"
        )


class GradualFreezer(DepthFreezer):
    """Gradual unfreezing (ULMFiT; fastai; Lightning's ``BackboneFinetuning``).

    The first ``every`` epochs train only the head; then one more layer group
    is unfrozen from the top every ``every`` epochs, until only the first
    ``frozen_depth`` groups stay frozen. Groups unfrozen later keep the
    optimizer state they had (none, since they had no gradients) and the
    groups already training keep theirs: the optimizer is built once.

    Parameters
    ----------
    every : int >= 1
        Epochs between two unfreezing steps (default 1).
    bn, lr_decay
        As for ``depth``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **DepthFreezer._parameter_constraints,
        "every": _at_least(1),
    }

    def __init__(self, every: int = 1, bn: str = "eval", lr_decay: float = 1.0) -> None:
        super().__init__(bn=bn, lr_decay=lr_decay)
        check_parameters(self._parameter_constraints, {"every": every}, "freeze__")
        self.every = int(every)

    def depth_at(self, n_groups: int, frozen_depth: int, epoch: int) -> int:
        unfrozen = epoch // self.every
        return max(frozen_depth, n_groups - unfrozen)

    def _extra_repr(self) -> str:
        return f"every={self.every}, "


class LinearProbeFineTune(DepthFreezer):
    """Linear probe, then fine-tune (LP-FT; Kumar et al. 2022).

    The first ``probe_epochs`` epochs train only the head; from then on the
    groups after ``frozen_depth`` train as well. Starting the fine-tune from
    a fitted head distorts the pretrained features less than starting it from
    a random one.

    Parameters
    ----------
    probe_epochs : int >= 0
        Epochs of head-only training (default 3).
    bn, lr_decay
        As for ``depth``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **DepthFreezer._parameter_constraints,
        "probe_epochs": _at_least(0),
    }

    def __init__(self, probe_epochs: int = 3, bn: str = "eval", lr_decay: float = 1.0) -> None:
        super().__init__(bn=bn, lr_decay=lr_decay)
        check_parameters(self._parameter_constraints, {"probe_epochs": probe_epochs}, "freeze__")
        self.probe_epochs = int(probe_epochs)

    def depth_at(self, n_groups: int, frozen_depth: int, epoch: int) -> int:
        return n_groups if epoch < self.probe_epochs else frozen_depth

    def _extra_repr(self) -> str:
        return f"probe_epochs={self.probe_epochs}, "


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    """``freeze__*`` distributions when the estimator's ``freeze=`` is one of these policies."""
    from ..search.space import chosen_freezer

    policy = chosen_freezer(estimator)
    if policy not in (DepthFreezer, GradualFreezer, LinearProbeFineTune):
        return None
    from optuna.distributions import FloatDistribution, IntDistribution

    space: dict[str, Any] = {"freeze__lr_decay": FloatDistribution(0.5, 1.0)}
    if policy is GradualFreezer:
        space["freeze__every"] = IntDistribution(1, 3)
    elif policy is LinearProbeFineTune:
        epochs = max(1, int(effective(estimator, "max_epochs") or 10))
        space["freeze__probe_epochs"] = IntDistribution(0, max(1, epochs // 2))
    return space


@hookimpl
def register_freezers(register) -> None:
    register("depth", DepthFreezer)
    register("gradual", GradualFreezer)
    register("lp_ft", LinearProbeFineTune, aliases=("lpft",))
