"""The trained module: input normalisation, the backbone's layer groups, a neck and a new head."""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .data.adapters import as_float_images
from .io.weights import adapt_input_channels
from .specs import BackboneParts, BackboneSpec, FreezeState

__all__ = [
    "FineTuneModule",
    "Normalize",
    "build_network",
    "export",
    "export_backbone",
    "merge_adapters",
    "param_groups",
]


class Normalize(nn.Module):
    """uint8 or [0, 1] images to the backbone's normalised input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int) -> None:
        super().__init__()
        mean_t, std_t = (
            torch.tensor(mean, dtype=torch.float32),
            torch.tensor(std, dtype=torch.float32),
        )
        if channels == 1 and len(mean_t) != 1:  # grayscale into summed RGB weights
            mean_t, std_t = mean_t.mean(0, keepdim=True), std_t.mean(0, keepdim=True)
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (as_float_images(x) - self.mean) / self.std


class FineTuneModule(nn.Module):
    """``head(neck(groups(preprocess(x))))`` with per-group freezing.

    The leading run of frozen groups runs under ``torch.no_grad`` (no
    activations kept for backward), and groups flagged ``eval_mode`` stay in
    eval mode while the rest of the module trains.

    ``forward(x, start=k)`` takes ``x`` to be the output of :meth:`prefix`
    for the first ``k`` groups (cached features) and runs the rest.
    """

    def __init__(self, parts: BackboneParts, head: nn.Module, preprocess: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.group_names = [name for name, _ in parts.groups]
        self.groups = nn.ModuleList([module for _, module in parts.groups])
        self.neck = parts.neck
        self.head = head
        self.frozen_prefix = 0
        self.head_lr_factor = 1.0  # the head's rate: lr * head_lr_factor (see param_groups)
        self.eval_groups: tuple[bool, ...] = (False,) * len(self.groups)
        # the original architecture, sharing the groups' parameters; not a
        # submodule, so the state dict keeps one name per tensor
        self.__dict__["original_model"] = parts.model

    def apply_freeze_state(self, state: FreezeState) -> None:
        n = len(self.groups)
        if not (len(state.trainable) == len(state.eval_mode) == len(state.lr_factors) == n):
            raise ValueError(
                f"freezing policy returned a state for {len(state.trainable)} "
                f"groups; the backbone has {n}"
            )
        for group, trainable in zip(self.groups, state.trainable):
            group.requires_grad_(trainable)
            if trainable and state.train_only is not None:  # adapters, biases: a part trains
                for name, param in group.named_parameters():
                    param.requires_grad_(bool(state.train_only(name)))
        self.frozen_prefix = next((i for i, t in enumerate(state.trainable) if t), n)
        self.eval_groups = tuple(state.eval_mode)
        self.__dict__.pop("_applied_mode", None)
        self.train(self.training)

    def train(self, mode: bool = True) -> FineTuneModule:
        # skorch calls train() before every step; walking a large backbone's
        # modules each time costs more than a head-only step, so skip repeats
        applied = (mode, self.eval_groups)
        if self.__dict__.get("_applied_mode") == applied and self.training == mode:
            return self
        super().train(mode)
        if mode:
            for group, frozen in zip(self.groups, self.eval_groups):
                if frozen:
                    group.eval()
        self.__dict__["_applied_mode"] = applied
        return self

    def prefix(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """Preprocessing and the first ``depth`` groups: ``forward(..., start=depth)``'s input."""
        x = self.preprocess(x)
        for group in self.groups[:depth]:
            x = group(x)
        return x

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        if start == 0:
            x = self.preprocess(x)
        frozen = max(start, self.frozen_prefix)
        with torch.no_grad():
            for group in self.groups[start:frozen]:
                x = group(x)
        for group in self.groups[frozen:]:
            x = group(x)
        return self.head(self.neck(x))


def build_network(
    spec: BackboneSpec,
    pretrained: Any,
    input_shape: tuple[int, ...],
    n_outputs: int,
    make_head: Any = None,
) -> FineTuneModule:
    """Build ``spec``'s backbone with weights, adapt its input, and put a new head on it.

    ``make_head(feature_dim, n_outputs)`` builds the head (default: the spec's, else Linear).
    """
    parts = spec.build(pretrained, input_shape)
    if spec.input_kind == "image":
        channels = input_shape[0]
        adapt_input_channels([module for _, module in parts.groups], channels)
        preprocess: nn.Module = Normalize(spec.mean, spec.std, channels)
    else:
        preprocess = nn.Identity()
    make_head = make_head or spec.make_head or nn.Linear
    module = FineTuneModule(parts, make_head(parts.feature_dim, n_outputs), preprocess)
    module.head_lr_factor = float(spec.defaults.get("head_lr_factor", 1.0))
    return module


def param_groups(module: FineTuneModule, lr: float, lr_factors: Sequence[float]) -> list[dict]:
    """One optimizer parameter group per layer group (rate ``lr * factor``), then the head's.

    The head's rate is ``lr * module.head_lr_factor`` (the backbone's ``head_lr_factor``
    default: 1 for images, larger for text encoders whose rate is small).
    """
    groups = []
    for name, group, factor in zip(module.group_names, module.groups, lr_factors):
        params = list(group.parameters())
        if params:
            groups.append({"params": params, "lr": lr * factor, "lr_factor": factor, "name": name})
    head, factor = list(module.head.parameters()), module.head_lr_factor
    groups.append({"params": head, "lr": lr * factor, "lr_factor": factor, "name": "head"})
    return groups


def merge_adapters(module: nn.Module) -> int:
    """Merge every ``peft`` adapter layer inside ``module`` into its base layer, in place.

    What peft's ``merge_and_unload`` does for a whole model, for adapters injected into
    layer groups: each adapted layer adds its update to the base weights (``merge``) and
    is replaced by its base layer (a plain ``nn.Linear``/``nn.Conv2d``), so exporters
    (ONNX, pruning) see the architecture they know. Returns the number of layers merged.
    """
    if "peft" not in sys.modules:  # no adapter layer can exist without peft imported
        return 0
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapted = [name for name, m in module.named_modules() if isinstance(m, BaseTunerLayer)]
    for name in adapted:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        layer = parent.get_submodule(child)
        layer.merge(safe_merge=True)
        setattr(parent, child, layer.get_base_layer())
    module.__dict__.pop("peft_config", None)
    return len(adapted)


def export(module: FineTuneModule, name: str = "") -> nn.Module:
    """The tuned backbone as its original architecture (torchvision's, timm's), on the CPU.

    A copy, in eval mode, under the architecture's own parameter names and
    with its classifier replaced by an identity: ``model(x)`` gives the
    features skft's head was trained on, for input normalised as the
    backbone expects (``module.preprocess``). Backbones whose spec sets no
    :attr:`BackboneParts.model` cannot be exported.
    """
    model = module.original_model
    if model is None:
        raise ValueError(
            f"backbone {name!r} does not hand back its original architecture "
            "(its spec's build sets no BackboneParts.model)"
        )
    model = copy.deepcopy(model).cpu().eval()
    merge_adapters(model)  # LoRA & co. folded into the weights: the plain architecture
    return model


def export_backbone(net: Any) -> nn.Module:
    """A fitted estimator's tuned backbone as its original architecture (see :func:`export`)."""
    net.check_is_fitted()
    return export(net.module_, net.backbone_spec_.name)
