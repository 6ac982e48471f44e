"""The trained module: input normalisation, the backbone's layer groups, a neck and a new head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .data import as_float_images
from .specs import BackboneParts, FreezeState

__all__ = ["FineTuneModule", "Normalize"]


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

    While ``input_depth`` is ``k > 0`` (set by skft during a fit on cached
    features), inputs of shape ``feature_shape`` are taken to be the output
    of the first ``k`` groups and enter the network after them.
    """

    def __init__(self, parts: BackboneParts, head: nn.Module, preprocess: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.group_names = [name for name, _ in parts.groups]
        self.groups = nn.ModuleList([module for _, module in parts.groups])
        self.neck = parts.neck
        self.head = head
        self.frozen_prefix = 0
        self.eval_groups: tuple[bool, ...] = (False,) * len(self.groups)
        self.input_depth = 0
        self.feature_shape: tuple[int, ...] = ()

    def apply_freeze_state(self, state: FreezeState) -> None:
        n = len(self.groups)
        if not (len(state.trainable) == len(state.eval_mode) == len(state.lr_factors) == n):
            raise ValueError(
                f"freezing policy returned a state for {len(state.trainable)} "
                f"groups; the backbone has {n}"
            )
        for group, trainable in zip(self.groups, state.trainable):
            group.requires_grad_(trainable)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.input_depth
        if start and tuple(x.shape[1:]) != self.feature_shape:
            start = 0  # raw input after all (a callback predicting on new data)
        if start == 0:
            x = self.preprocess(x)
        with torch.no_grad():
            for group in self.groups[start : self.frozen_prefix]:
                x = group(x)
        for group in self.groups[max(start, self.frozen_prefix) :]:
            x = group(x)
        return self.head(self.neck(x))
