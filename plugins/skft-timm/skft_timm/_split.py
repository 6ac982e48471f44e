"""Cutting a timm model into skft's layer groups, neck and feature size.

A timm model is cut along ``model.group_matcher(coarse=True)``: the modules
``forward_features`` calls are collected in call order (containers that span
several groups are opened), consecutive modules of one group become one
``nn.Sequential``, and ``forward_head(x, pre_logits=True)`` (global pooling and
flattening) is the neck. Entries timm attaches to the previous group
(``MATCH_PREV_GROUP``: a final conv/norm such as EfficientNet's ``conv_head``)
form their own, last group. The cut is checked once per architecture and channel
count against the model's own forward pass on a random input; a model whose
forward pass is not a plain chain of modules (ViT-style token handling) becomes a
single group. The groups share the model's modules, so the model itself is
handed back too (``BackboneParts.model``): the tuned network under timm's names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from skft.plugin_api import warn_at_caller
from skft.specs import BackboneParts
from timm.data import resolve_model_data_config
from timm.models import group_parameters
from torch import nn

__all__ = ["TimmHead", "TimmModel", "split_model"]

# timm.models._manipulate.MATCH_PREV_GROUP, spelled out to avoid a private import
_MATCH_PREV_GROUP = (99999,)


@dataclass(frozen=True)
class _Plan:
    #: ``(group name, module paths)``; empty: the whole model is one group
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    #: top-level module paths ``forward_head`` uses
    head: tuple[str, ...]
    #: name of the extra last group when the head has parameters (else the neck)
    head_group: str | None
    feature_dim: int


_PLANS: dict[str, _Plan] = {}


class TimmHead(nn.Module):
    """timm's ``forward_head(x, pre_logits=True)``: global pooling and flattening.

    The head's modules are registered here; the model itself is held unregistered
    (its other modules belong to the layer groups).
    """

    def __init__(self, model: nn.Module, paths: Iterable[str]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict({p.replace(".", "_"): model.get_submodule(p) for p in paths})
        self._model = (model,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model[0].forward_head(x, pre_logits=True)

    def train(self, mode: bool = True) -> TimmHead:
        super().train(mode)
        self._model[0].training = mode  # forward_head may look at the model's flag (dropout)
        return self


class TimmModel(nn.Module):
    """A whole timm model as one group: ``forward_head(forward_features(x), pre_logits=True)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


class _NoSplit(Exception):
    pass


def split_model(model: nn.Module, key: str) -> BackboneParts:
    """Cut ``model`` (a timm model with ``num_classes=0``) into skft's parts.

    ``key`` names the architecture; the cut is worked out and verified once per
    key and input channel count (``in_chans``).
    """
    in_chans = getattr(model, "in_chans", 3)
    if in_chans != 3:
        key = f"{key} (in_chans={in_chans})"
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _make_plan(model, key)
    if not plan.groups:
        return BackboneParts(
            groups=[("model", TimmModel(model))],
            neck=nn.Identity(),
            feature_dim=plan.feature_dim,
            model=model,
        )
    groups = [(name, _group_module(model, paths)) for name, paths in plan.groups]
    head = TimmHead(model, plan.head)
    if plan.head_group is not None:
        groups.append((plan.head_group, head))
        neck: nn.Module = nn.Identity()
    else:
        neck = head
    return BackboneParts(groups=groups, neck=neck, feature_dim=plan.feature_dim, model=model)


def _group_module(model: nn.Module, paths: tuple[str, ...]) -> nn.Module:
    if len(paths) == 1:
        return model.get_submodule(paths[0])
    return nn.Sequential(OrderedDict((p.replace(".", "_"), model.get_submodule(p)) for p in paths))


def _make_plan(model: nn.Module, key: str) -> _Plan:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = _probe_input(model)
            expected = model(x)
            try:
                return _cut(model, x, expected)
            except Exception as exc:  # _NoSplit, or a model too unusual for _cut
                warn_at_caller(
                    f"skft-timm: {key} cannot be cut into layer groups ({exc}); the whole "
                    "model is one group, so frozen_depth can only be 0 or 1."
                )
                return _Plan(groups=(), head=(), head_group=None, feature_dim=expected.shape[-1])
    finally:
        model.train(was_training)


def _probe_input(model: nn.Module) -> torch.Tensor:
    """A small random batch the model accepts (64 px unless its input size is fixed)."""
    _, height, width = resolve_model_data_config(model)["input_size"]
    chans = getattr(model, "in_chans", 3)
    fixed = (getattr(model, "pretrained_cfg", None) or {}).get("fixed_input_size", False)
    sizes = [(height, width)] if fixed else [(64, 64), (height, width)]
    gen = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate(sizes):
        x = torch.randn(2, chans, h, w, generator=gen)
        try:
            model(x)
            return x
        except Exception:
            if i == len(sizes) - 1:
                raise
    raise AssertionError("unreachable")


def _trace(
    model: nn.Module, fn: Callable[[Any], Any], x: Any
) -> tuple[Any, dict[str, int], dict[str, int]]:
    """Run ``fn(x)``, recording each submodule's first call (order) and number of calls."""
    first: dict[str, int] = {}
    count: dict[str, int] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: Any) -> None:
            first.setdefault(name, len(first))
            count[name] = count.get(name, 0) + 1

        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        out = fn(x)
    finally:
        for h in handles:
            h.remove()
    return out, first, count


def _top_units(model: nn.Module, called: dict[str, int]) -> list[str]:
    """Outermost called modules, in call order.

    A module that is not called itself but whose children are (a ModuleList, a
    Sequential iterated over) is opened.
    """
    units: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if path in called:
                units.append(path)
            elif any(c.startswith(path + ".") for c in called):
                visit(path + ".", child)

    visit("", model)
    return sorted(units, key=called.__getitem__)


def _matcher(model: nn.Module) -> Any:
    """``group_matcher(coarse=True)`` with ``MATCH_PREV_GROUP`` entries made their own group."""
    matcher = model.group_matcher(coarse=True)
    if not isinstance(matcher, dict):
        return matcher
    last = (_MATCH_PREV_GROUP[0] - 1,)
    out = {}
    for name, spec in matcher.items():
        if isinstance(spec, (list, tuple)):
            spec = [(s[0], last if tuple(s[1] or ()) == _MATCH_PREV_GROUP else s[1]) for s in spec]
        out[name] = spec
    return out


def _cut(model: nn.Module, x: torch.Tensor, expected: torch.Tensor) -> _Plan:
    if not hasattr(model, "group_matcher"):
        raise _NoSplit("no group_matcher")
    group_of = group_parameters(model, _matcher(model), reverse=True)
    features, called, count = _trace(model, model.forward_features, x)

    def gids(path: str) -> set[int]:
        names = (f"{path}.{n}" for n, _ in model.get_submodule(path).named_parameters())
        return {group_of[n] for n in names if n in group_of}  # shared weights: first name only

    def expand(path: str) -> list[str]:
        module = model.get_submodule(path)
        if (
            len(gids(path)) > 1
            and isinstance(module, nn.Sequential)
            and type(module).forward is nn.Sequential.forward
        ):
            return [p for name, _ in module.named_children() for p in expand(f"{path}.{name}")]
        return [path]

    units = [p for u in _top_units(model, called) for p in expand(u)]
    if not units:
        raise _NoSplit("forward_features calls no submodule")
    repeated = [p for p in units if count.get(p, 1) > 1]
    if repeated:
        raise _NoSplit(f"{', '.join(repeated)} called more than once")

    # consecutive units of the same group(s) form one group; parameter-free ones join in
    cut: list[tuple[set[int], list[str]]] = []
    for path in units:
        g = gids(path)
        if cut and (not g or not cut[-1][0] or min(g) <= max(cut[-1][0])):
            cut[-1][0].update(g)
            cut[-1][1].append(path)
        else:
            cut.append((set(g), [path]))

    # the chain must reproduce forward_features
    y = x
    try:
        for _, paths in cut:
            y = _group_module(model, tuple(paths))(y)
    except Exception as exc:  # glue code between the modules (reshapes, tokens)
        raise _NoSplit(f"forward_features is not a chain of its modules: {exc}") from exc
    if not _same(y, features):
        raise _NoSplit("forward_features is not a chain of its modules")

    head_called = _trace(model, lambda t: model.forward_head(t, pre_logits=True), features)[1]
    head = _top_units(model, head_called)
    trunk = {p for _, paths in cut for p in paths}
    if any(h == t or h.startswith(t + ".") or t.startswith(h + ".") for h in head for t in trunk):
        raise _NoSplit("forward_head uses modules of forward_features")
    try:
        out = TimmHead(model, head)(y)
    except Exception as exc:
        raise _NoSplit(f"forward_head fails on the chain's output: {exc}") from exc
    if not _same(out, expected) or out.ndim != 2:
        raise _NoSplit("forward_head(pre_logits=True) does not give the model's features")
    head_params = [p for p in head if any(True for _ in model.get_submodule(p).parameters())]

    groups = tuple((_name(model, paths), tuple(paths)) for _, paths in cut)
    return _Plan(
        groups=groups,
        head=tuple(head),
        head_group="+".join(head_params) if head_params else None,
        feature_dim=int(out.shape[-1]),
    )


def _name(model: nn.Module, paths: list[str]) -> str:
    with_params = [p for p in paths if any(True for _ in model.get_submodule(p).parameters())]
    return "+".join(with_params or paths)


def _same(a: Any, b: Any) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    )
