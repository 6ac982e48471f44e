"""Built-in augmenters: ``none`` and ``basic`` (flip, crop, rotation, translation)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..hookspecs import hookimpl


class NoAugment:
    """The identity."""

    input_kinds = ("image", "tabular", "text")

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        return X


class BasicAugment:
    """Per-sample flip, random resized crop, rotation and translation in one resampling.

    Every range scales linearly with ``strength``; at strength 1: flip
    probability ``flip``, crops keeping down to ``1 - crop`` of the area,
    rotations up to ``rotate`` degrees, shifts up to ``translate`` of the side.
    All samples are transformed by one ``affine_grid`` + ``grid_sample`` call
    on the batch's device.
    """

    input_kinds = ("image",)

    def __init__(
        self,
        flip: float = 0.5,
        crop: float = 0.5,
        rotate: float = 20.0,
        translate: float = 0.15,
    ) -> None:
        for name, value, hi in (("flip", flip, 1.0), ("crop", crop, 0.95)):
            if not 0.0 <= value <= hi:
                raise ValueError(f"augment__{name} must be in [0, {hi}], got {value}")
        self.flip, self.crop, self.rotate, self.translate = flip, crop, rotate, translate

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        if strength <= 0:
            return X
        n = X.shape[0]

        def uniform(lo: float, hi: float) -> torch.Tensor:
            u = torch.rand(n, generator=generator, device=X.device, dtype=X.dtype)
            return lo + (hi - lo) * u

        flip_p = self.flip * strength
        u = torch.rand(n, generator=generator, device=X.device, dtype=X.dtype)
        sign = torch.where(u < flip_p, -1.0, 1.0).to(X.dtype)
        area = uniform(1.0 - self.crop * strength, 1.0)
        zoom = area.sqrt()  # < 1: the sampled window is smaller than the image
        angle = uniform(-self.rotate * strength, self.rotate * strength) * (math.pi / 180)
        max_shift = 2 * self.translate * strength  # grid coordinates span 2
        tx, ty = uniform(-max_shift, max_shift), uniform(-max_shift, max_shift)
        cos, sin = angle.cos() * zoom, angle.sin() * zoom
        theta = torch.stack(
            [torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta, list(X.shape), align_corners=False)
        return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def __repr__(self) -> str:
        return (
            f"BasicAugment(flip={self.flip}, crop={self.crop}, rotate={self.rotate}, "
            f"translate={self.translate})"
        )


@hookimpl
def register_augmenters(register) -> None:
    register("none", NoAugment)
    register("basic", BasicAugment)
