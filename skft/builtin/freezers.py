"""Built-in freezing policies."""

from __future__ import annotations

from collections.abc import Sequence

from ..hookspecs import hookimpl
from ..specs import FreezeState

BN_MODES = ("eval", "train")


class DepthFreezer:
    """Freeze the first ``frozen_depth`` layer groups for the whole fit.

    Parameters
    ----------
    bn : {"eval", "train"}
        "eval" (default) runs frozen groups in eval mode, so their BatchNorm
        running statistics do not move; "train" lets them move.
    """

    def __init__(self, bn: str = "eval") -> None:
        if bn not in BN_MODES:
            raise ValueError(f"freeze__bn must be one of {BN_MODES}, got {bn!r}")
        self.bn = bn

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> FreezeState:
        trainable = tuple(i >= frozen_depth for i in range(len(groups)))
        return FreezeState(
            trainable=trainable,
            eval_mode=tuple(not t and self.bn == "eval" for t in trainable),
            lr_factors=(1.0,) * len(groups),
        )

    def __repr__(self) -> str:
        return f"DepthFreezer(bn={self.bn!r})"


@hookimpl
def register_freezers(register) -> None:
    register("depth", DepthFreezer)
