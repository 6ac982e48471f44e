"""Built-in adapter policies: ``lora``, ``loha`` and ``ia3`` through ``peft``, and ``bitfit``.

An adapter policy freezes every weight of the backbone and trains small additions
instead: peft's LoRA / LoHa / IA3 layers injected around the ``nn.Linear`` and
``nn.Conv2d`` layers of the layer groups after ``frozen_depth`` (BitFit trains their
biases). Groups below ``frozen_depth`` get no adapters and stay frozen, so the
frozen-prefix feature cache still applies to them; the head always trains.

Parameters (``freeze__*``, searchable like any other):

``r``, ``alpha``, ``dropout``
    the adapter's rank, scaling numerator (peft's ``lora_alpha``: the update is
    scaled by ``alpha / r``) and dropout (LoRA: on the adapter's input; LoHa: rank
    dropout); IA3 and BitFit have none of them.
``target``
    which layers get adapters: a string or a list of strings, each a layer kind
    (``"linear"``, ``"conv"``: ``nn.Conv2d``/``nn.Conv1d`` but not depthwise,
    ``"embedding"``) or a regular expression searched in the layer's name
    ``"<group name>.<path inside the group>"`` (``"query|value"``, ``"layer5"``);
    ``"linear+conv"`` (the default) is the union of its ``+``-separated parts.
``probe_epochs``
    epochs of head-only training before the adapters train (default 0), as
    ``freeze="lp_ft"`` does before fine-tuning (LP-FT, Kumar et al. 2022): the adapters
    then start from a fitted head rather than a random one.
``bn``, ``lr_decay``
    as for ``freeze="depth"``: BatchNorm mode of the frozen groups, layer-wise
    learning-rate decay over the adapted ones.

peft is imported only when a network is adapted (``pip install peft``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from ..hookspecs import hookimpl
from ..params.constraints import Integral, Interval, Real, check_parameters
from .freezers import DepthFreezer

__all__ = [
    "ADAPTABLE_KINDS",
    "AdapterFreezer",
    "BitFitFreezer",
    "IA3Freezer",
    "LoHaFreezer",
    "LoraFreezer",
    "adaptable_layers",
    "search_space",
]

#: Layer kinds ``freeze__target`` may name.
ADAPTABLE_KINDS = ("linear", "conv", "embedding")


def _kind(layer: Any) -> str | None:
    from torch import nn

    if isinstance(layer, nn.Linear):
        return "linear"
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        return "conv" if layer.groups == 1 else None  # peft cannot merge depthwise adapters
    if isinstance(layer, nn.Embedding):
        return "embedding"
    return None


def _parse_target(target: Any) -> tuple[str, ...]:
    items = [target] if isinstance(target, str) else target
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"freeze__target must be a string or a list of strings, got {target!r}")
    tokens: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip("+ "):
            raise ValueError(f"freeze__target must hold non-empty strings, got {item!r}")
        tokens += [t.strip() for t in item.split("+") if t.strip()]
    for token in tokens:
        if token not in ADAPTABLE_KINDS:
            try:
                re.compile(token)
            except re.error as exc:
                raise ValueError(
                    f"freeze__target {token!r} is neither a layer kind {ADAPTABLE_KINDS} "
                    f"nor a regular expression: {exc}"
                ) from None
    return tuple(tokens)


def adaptable_layers(
    groups: Any, names: Sequence[str], first: int, target: Any = "linear+conv"
) -> list[str]:
    """Names (inside ``groups``, a ``ModuleList``) of the layers ``target`` picks.

    Only layers strictly inside groups ``first`` onwards count. Raises ``ValueError``
    when those groups hold no layer peft can adapt, or when a part of ``target``
    picks none of them (naming the layers there are).
    """
    tokens = _parse_target(target)
    layers: list[tuple[str, str, str]] = []  # (key in the ModuleList, shown name, kind)
    for i in range(first, len(names)):
        for path, layer in groups[i].named_modules():
            kind = _kind(layer) if path else None  # a group's root cannot be swapped in place
            if kind is not None:
                layers.append((f"{i}.{path}", f"{names[i]}.{path}", kind))
    adapted = ", ".join(names[first:]) or "none"
    if not layers:
        raise ValueError(
            f"no layer to adapt: the layer groups after frozen_depth ({adapted}) hold no "
            "nn.Linear, nn.Conv2d (not depthwise) or nn.Embedding layer that peft can adapt"
        )
    kinds = sorted({kind for _, _, kind in layers})
    examples = ", ".join(shown for _, shown, _ in layers[:6]) + (", ..." if len(layers) > 6 else "")
    picked: dict[str, None] = {}
    for token in tokens:
        hits = [
            key
            for key, shown, kind in layers
            if (kind == token if token in ADAPTABLE_KINDS else re.search(token, shown))
        ]
        if not hits and token not in ADAPTABLE_KINDS:  # a kind may be absent ("linear+conv")
            raise ValueError(
                f"freeze__target {token!r} names no layer in the adapted groups ({adapted}); "
                f"their layers are of kinds {kinds}, named like {examples}"
            )
        picked.update(dict.fromkeys(hits))
    if not picked:
        raise ValueError(
            f"freeze__target {target!r} names no layer in the adapted groups ({adapted}); "
            f"their layers are of kinds {kinds}, named like {examples}"
        )
    return list(picked)


class AdapterFreezer(DepthFreezer):
    """Base of the adapter policies: groups after ``frozen_depth`` train only what
    :meth:`adapt` added (parameter names holding :attr:`param_marker`); the others
    are frozen as by ``depth``. Subclasses build the peft config (:meth:`peft_config`).
    """

    #: the substring of the names of the parameters that train (peft's tuner prefix)
    param_marker = "lora_"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **DepthFreezer._parameter_constraints,
        "probe_epochs": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        target: Any = "linear+conv",
        probe_epochs: int = 0,
        bn: str = "eval",
        lr_decay: float = 1.0,
    ):
        super().__init__(bn=bn, lr_decay=lr_decay)
        _parse_target(target)
        check_parameters(
            AdapterFreezer._parameter_constraints, {"probe_epochs": probe_epochs}, "freeze__"
        )
        self.target = target
        self.probe_epochs = int(probe_epochs)

    def depth_at(self, n_groups: int, frozen_depth: int, epoch: int) -> int:
        """Every group frozen (the head alone trains) for the first ``probe_epochs``."""
        return n_groups if epoch < self.probe_epochs else frozen_depth

    def peft_config(self, target_modules: str) -> Any:
        raise NotImplementedError

    def trains(self, name: str) -> bool:
        """Whether the parameter ``name`` (inside its group) trains."""
        return self.param_marker in name

    def adapt(self, groups: Any, names: Sequence[str], frozen_depth: int) -> None:
        """Inject the adapters into the groups after ``frozen_depth`` (peft's
        ``inject_adapter_in_model`` on the groups, the layers picked by name)."""
        try:
            from peft import inject_adapter_in_model
        except ImportError as exc:  # pragma: no cover - peft is a dependency of this policy
            raise ImportError(f"freeze={type(self).__name__} needs peft: pip install peft") from exc
        keys = adaptable_layers(groups, names, frozen_depth, self.target)
        pattern = "(?:" + "|".join(re.escape(k) for k in keys) + ")"
        inject_adapter_in_model(self.peft_config(pattern), groups)
        groups.__dict__.pop("peft_config", None)  # the layers hold all they need

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> Any:
        from dataclasses import replace

        return replace(super().__call__(groups, frozen_depth, epoch), train_only=self.trains)

    def _extra_repr(self) -> str:
        probe = f"probe_epochs={self.probe_epochs}, " if self.probe_epochs else ""
        return f"target={self.target!r}, {probe}"


class LoraFreezer(AdapterFreezer):
    """LoRA (Hu et al. 2021) through peft: a trainable low-rank update ``B @ A``, scaled by
    ``alpha / r``, beside each targeted frozen layer (``nn.Linear``, ``nn.Conv2d``).

    Parameters
    ----------
    r : int >= 1
        Rank of the update (default 8).
    alpha : float > 0
        Scaling numerator (default 16: ``2 * r``).
    dropout : float in [0, 1)
        Dropout on the adapter's input (default 0.0).
    target, probe_epochs, bn, lr_decay
        See the module's docstring.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **AdapterFreezer._parameter_constraints,
        "r": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        target: Any = "linear+conv",
        probe_epochs: int = 0,
        bn: str = "eval",
        lr_decay: float = 1.0,
    ) -> None:
        super().__init__(target=target, probe_epochs=probe_epochs, bn=bn, lr_decay=lr_decay)
        values = {"r": r, "alpha": alpha, "dropout": dropout}
        check_parameters(self._parameter_constraints, values, "freeze__")
        self.r = int(r)
        self.alpha = float(alpha)
        self.dropout = float(dropout)

    def peft_config(self, target_modules: str) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=target_modules,
        )

    def _extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, dropout={self.dropout}, " + super()._extra_repr()


class LoHaFreezer(LoraFreezer):
    """LoHa (Hadamard product of two low-rank updates; LyCORIS) through peft.

    Parameters as for ``lora``; ``dropout`` is LoHa's rank dropout.
    """

    param_marker = "hada_"

    def peft_config(self, target_modules: str) -> Any:
        from peft import LoHaConfig

        return LoHaConfig(
            r=self.r, alpha=self.alpha, rank_dropout=self.dropout, target_modules=target_modules
        )


class IA3Freezer(AdapterFreezer):
    """IA3 (Liu et al. 2022) through peft: a trainable scale per output channel of each
    targeted layer. Parameters: ``target``, ``probe_epochs``, ``bn``, ``lr_decay``."""

    param_marker = "ia3_"

    def peft_config(self, target_modules: str) -> Any:
        from peft import IA3Config

        # scale outputs everywhere (peft's "feedforward" layers scale inputs): no layer
        return IA3Config(target_modules=target_modules, feedforward_modules="(?!x)x")


class BitFitFreezer(AdapterFreezer):
    """BitFit (Ben Zaken et al. 2022): in the groups after ``frozen_depth``, only the
    biases train (of every layer, normalisation layers included); no layer is added.

    Parameters: ``probe_epochs`` (see the module), ``bn``, ``lr_decay`` (as for ``depth``).
    """

    def __init__(self, probe_epochs: int = 0, bn: str = "eval", lr_decay: float = 1.0) -> None:
        super().__init__(probe_epochs=probe_epochs, bn=bn, lr_decay=lr_decay)

    def trains(self, name: str) -> bool:
        return name.rsplit(".", 1)[-1] == "bias"

    def adapt(self, groups: Any, names: Sequence[str], frozen_depth: int) -> None:
        """Nothing to add; refuses groups without a bias to train."""
        for i in range(frozen_depth, len(names)):
            if any(self.trains(n) for n, _ in groups[i].named_parameters()):
                return
        adapted = ", ".join(names[frozen_depth:]) or "none"
        raise ValueError(
            f"freeze='bitfit' has no bias to train in the layer groups after frozen_depth "
            f"({adapted})"
        )

    def _extra_repr(self) -> str:
        return f"probe_epochs={self.probe_epochs}, " if self.probe_epochs else ""


ADAPTERS = (LoraFreezer, LoHaFreezer, IA3Freezer, BitFitFreezer)


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    """``freeze__r`` / ``freeze__alpha`` / ``freeze__dropout`` (LoRA, LoHa),
    ``freeze__probe_epochs`` and ``freeze__lr_decay`` when ``freeze=`` is an adapter."""
    from ..search.space import chosen_freezer

    policy = chosen_freezer(estimator)
    if policy not in ADAPTERS:
        return None
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from ..params.defaults import effective

    epochs = max(1, int(effective(estimator, "max_epochs") or 10))
    space: dict[str, Any] = {
        "freeze__lr_decay": FloatDistribution(0.5, 1.0),
        "freeze__probe_epochs": IntDistribution(0, max(1, epochs // 2)),
    }
    if issubclass(policy, LoraFreezer):
        space["freeze__r"] = CategoricalDistribution([2, 4, 8, 16, 32])
        space["freeze__alpha"] = CategoricalDistribution([4.0, 8.0, 16.0, 32.0, 64.0])
        space["freeze__dropout"] = FloatDistribution(0.0, 0.3)
    return space


@hookimpl
def register_freezers(register) -> None:
    register("lora", LoraFreezer)
    register("loha", LoHaFreezer)
    register("ia3", IA3Freezer)
    register("bitfit", BitFitFreezer, aliases=("bias",))
