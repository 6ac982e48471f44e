"""Built-in augmenters: ``none``, ``basic``, ``color``, ``mixup`` and ``cutmix``.

Every augmenter is vectorised over the batch: per-sample random parameters are
drawn as tensors from the generator it is handed, on the batch's device, and
applied with a few batched kernels (no per-sample Python loop). Strength 0
returns the input unchanged; every range grows linearly with strength. The
random numbers drawn do not depend on the strength, so the same generator
state gives the same choices at every strength and only the magnitudes move
(this is what makes "more strength, more change" hold sample by sample).

``randaugment`` lives in :mod:`skft.builtin.randaugment`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..hookspecs import hookimpl
from ..params.constraints import Interval, Real, check_parameters
from ..specs import Augmenter

__all__ = ["AffineAugment", "BasicAugment", "ColorAugment", "CutMix", "MixUp", "NoAugment"]

#: ITU-R 601 luma weights, as torchvision's ``rgb_to_grayscale``.
LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------
# helpers shared with randaugment
# --------------------------------------------------------------------------


def uniform(n: int, lo, hi, generator: torch.Generator, X: torch.Tensor) -> torch.Tensor:
    """``n`` uniform draws in ``[lo, hi)`` on ``X``'s device and dtype."""
    u = torch.rand(n, generator=generator, device=X.device, dtype=X.dtype)
    return lo + (hi - lo) * u


def gray(X: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` luma of RGB images; grayscale images unchanged."""
    if X.shape[1] == 1:
        return X
    w = torch.tensor(LUMA, device=X.device, dtype=X.dtype).view(1, 3, 1, 1)
    return (X * w).sum(1, keepdim=True)


def per_sample(v: torch.Tensor) -> torch.Tensor:
    """``(N,)`` to ``(N, 1, 1, 1)`` for broadcasting over images."""
    return v.view(-1, 1, 1, 1)


def affine(X: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample every image through its own ``(2, 3)`` affine map (zeros outside)."""
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _between(lo: float, hi: float) -> list[Any]:
    return [Interval(Real, lo, hi, closed="both")]


def _check(augmenter: Any, **values: Any) -> None:
    check_parameters(augmenter._parameter_constraints, values, "augment__")


# --------------------------------------------------------------------------
# none, basic
# --------------------------------------------------------------------------


class NoAugment(Augmenter):
    """The identity."""

    input_kinds = ("image", "tabular", "text")

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        return X

    def __repr__(self) -> str:
        return "NoAugment()"


class BasicAugment(Augmenter):
    """Per-sample flip, random resized crop, rotation and translation in one resampling.

    Every range scales linearly with ``strength``; at strength 1: flip
    probability ``flip``, crops keeping down to ``1 - crop`` of the area,
    rotations up to ``rotate`` degrees, shifts up to ``translate`` of the side.
    All samples are transformed by one ``affine_grid`` + ``grid_sample`` call
    on the batch's device.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "flip": _between(0, 1),
        "crop": _between(0, 0.95),
        "rotate": _between(0, 180),
        "translate": _between(0, 1),
    }

    def __init__(
        self,
        flip: float = 0.5,
        crop: float = 0.5,
        rotate: float = 20.0,
        translate: float = 0.15,
    ) -> None:
        _check(self, flip=flip, crop=crop, rotate=rotate, translate=translate)
        self.flip, self.crop, self.rotate, self.translate = flip, crop, rotate, translate

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        if strength <= 0:
            return X
        n = X.shape[0]
        u = torch.rand(n, generator=generator, device=X.device, dtype=X.dtype)
        sign = torch.where(u < self.flip * strength, -1.0, 1.0).to(X.dtype)
        area = uniform(n, 1.0 - self.crop * strength, 1.0, generator, X)
        zoom = area.sqrt()  # < 1: the sampled window is smaller than the image
        angle = uniform(n, -1.0, 1.0, generator, X) * (self.rotate * strength * math.pi / 180)
        max_shift = 2 * self.translate * strength  # grid coordinates span 2
        tx, ty = (uniform(n, -max_shift, max_shift, generator, X) for _ in range(2))
        cos, sin = angle.cos() * zoom, angle.sin() * zoom
        theta = torch.stack(
            [torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1
        )
        return affine(X, theta)

    def __repr__(self) -> str:
        return (
            f"BasicAugment(flip={self.flip}, crop={self.crop}, rotate={self.rotate}, "
            f"translate={self.translate})"
        )


class AffineAugment(BasicAugment):
    """:class:`BasicAugment` without the mirror (``flip=0``): crop, rotation and shift.

    For images whose orientation carries meaning (digits, letters, symbols); the
    fit plan picks it for small or grayscale images (:mod:`skft.params.plan`).
    """

    def __init__(self, crop: float = 0.5, rotate: float = 20.0, translate: float = 0.15) -> None:
        super().__init__(flip=0.0, crop=crop, rotate=rotate, translate=translate)

    def __repr__(self) -> str:
        return f"AffineAugment(crop={self.crop}, rotate={self.rotate}, translate={self.translate})"


# --------------------------------------------------------------------------
# color
# --------------------------------------------------------------------------

_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)


class ColorAugment(Augmenter):
    """Per-sample brightness, contrast, saturation and hue jitter.

    At strength ``s`` the factors are drawn uniformly from
    ``1 ± brightness*s``, ``1 ± contrast*s``, ``1 ± saturation*s`` and the hue
    shift from ``± hue*s`` of a full turn (torchvision's ``ColorJitter``
    conventions, applied in that fixed order). The four operations fold into
    one 3x3 colour matrix plus an offset per sample (hue is a rotation in YIQ
    space), applied to the batch with one ``einsum``; the result is clamped to
    [0, 1] once. Grayscale (1-channel) images get brightness and contrast only.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "brightness": _between(0, 1),
        "contrast": _between(0, 1),
        "saturation": _between(0, 1),
        "hue": _between(0, 0.5),
    }

    def __init__(
        self,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
    ) -> None:
        _check(self, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue = saturation, hue

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        if strength <= 0:
            return X
        n, c = X.shape[:2]
        u = torch.rand(n, 4, generator=generator, device=X.device, dtype=X.dtype) * 2 - 1
        bright = 1 + self.brightness * strength * u[:, 0]
        con = 1 + self.contrast * strength * u[:, 1]
        mean = gray(X).mean(dim=(1, 2, 3))
        offset = per_sample((1 - con) * bright * mean)
        if c != 3:
            return (X * per_sample(con * bright) + offset).clamp_(0, 1)
        sat = 1 + self.saturation * strength * u[:, 2]
        turn = self.hue * strength * u[:, 3] * (2 * math.pi)
        eye = torch.eye(3, device=X.device, dtype=X.dtype)
        luma = torch.tensor(LUMA, device=X.device, dtype=X.dtype)
        # saturation: blend with the luma image
        S = sat.view(-1, 1, 1) * eye + (1 - sat).view(-1, 1, 1) * luma.view(1, 1, 3)
        # hue: rotate the chroma plane of YIQ
        T = torch.tensor(_RGB_TO_YIQ, device=X.device, dtype=X.dtype)
        R = eye.repeat(n, 1, 1)
        R[:, 1, 1], R[:, 1, 2] = turn.cos(), turn.sin()  # the direction of torchvision's hue
        R[:, 2, 1], R[:, 2, 2] = -turn.sin(), turn.cos()
        H = torch.linalg.inv(T) @ R @ T
        M = (con * bright).view(-1, 1, 1) * (H @ S)
        return (torch.einsum("nij,njhw->nihw", M, X) + offset).clamp_(0, 1)

    def __repr__(self) -> str:
        return (
            f"ColorAugment(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )


# --------------------------------------------------------------------------
# mixup, cutmix
# --------------------------------------------------------------------------


def mix_weights(n: int, alpha: float, generator: torch.Generator, X: torch.Tensor) -> torch.Tensor:
    """Per-sample weight of a sample's own content, ``max(lam, 1 - lam)``, lam ~ Beta(alpha, alpha).

    Drawn by inverting the Beta CDF at a uniform in [0.5, 1) from ``generator``
    (so the weight falls monotonically towards 0.5 as ``alpha`` grows, sample
    by sample, and approaches 1 as ``alpha`` approaches 0).
    """
    from scipy.special import betaincinv

    u = torch.rand(n, generator=generator, device=X.device, dtype=torch.float64)
    q = (0.5 + 0.5 * u).cpu().numpy()
    lam = torch.as_tensor(betaincinv(alpha, alpha, q), dtype=X.dtype).to(X.device)
    return lam.clamp_(0.5, 1.0)


class MixUp(Augmenter):
    """Blend every sample with the next one in the batch (mixup), targets likewise.

    ``alpha = augment__alpha * strength`` (so with the default
    ``augment__alpha=1`` the strength *is* the Beta parameter: 0.2-0.4 is the
    ImageNet recipe, 1.0 the CIFAR one). Each sample keeps a weight
    ``max(lam, 1-lam)`` of itself, lam ~ Beta(alpha, alpha), drawn per
    sample. Called with ``y=`` (one-hot class probabilities or standardised
    regression targets, ``(N, K)``) it returns ``(X, y)`` with ``y`` mixed by
    the same weights; without ``y`` it returns ``X``.
    """

    input_kinds = ("image", "tabular")
    mixes_targets = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"alpha": _between(1e-3, 100)}

    def __init__(self, alpha: float = 1.0) -> None:
        _check(self, alpha=alpha)
        self.alpha = alpha

    def __call__(self, X, strength, generator, y=None):
        if strength <= 0:
            return X if y is None else (X, y)
        lam = mix_weights(X.shape[0], self.alpha * strength, generator, X)
        shape = (-1,) + (1,) * (X.ndim - 1)
        out = torch.lerp(X.roll(1, 0), X, lam.view(shape))
        if y is None:
            return out
        lam_y = lam.to(y.dtype).view((-1,) + (1,) * (y.ndim - 1))
        return out, torch.lerp(y.roll(1, 0), y, lam_y)

    def __repr__(self) -> str:
        return f"MixUp(alpha={self.alpha})"


class CutMix(Augmenter):
    """Paste a box from the next sample in the batch into every sample (CutMix).

    ``alpha = augment__alpha * strength``; each sample keeps an area fraction
    ``max(lam, 1-lam)``, lam ~ Beta(alpha, alpha), and the box of the rest is
    centred uniformly at random and clipped to the image. Targets (when
    ``y=`` is given) are mixed by the area actually kept.
    """

    mixes_targets = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"alpha": _between(1e-3, 100)}

    def __init__(self, alpha: float = 1.0) -> None:
        _check(self, alpha=alpha)
        self.alpha = alpha

    def __call__(self, X, strength, generator, y=None):
        if strength <= 0:
            return X if y is None else (X, y)
        n, _, h, w = X.shape
        lam = mix_weights(n, self.alpha * strength, generator, X)
        centre = torch.rand(n, 2, generator=generator, device=X.device, dtype=X.dtype)
        side = (1 - lam).sqrt()
        cy, cx = centre[:, 0] * h, centre[:, 1] * w
        y0 = (cy - side * h / 2).round().clamp(0, h)
        y1 = (cy + side * h / 2).round().clamp(0, h)
        x0 = (cx - side * w / 2).round().clamp(0, w)
        x1 = (cx + side * w / 2).round().clamp(0, w)
        rows = torch.arange(h, device=X.device, dtype=X.dtype)
        cols = torch.arange(w, device=X.device, dtype=X.dtype)
        in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])
        in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])
        box = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
        out = torch.where(box, X.roll(1, 0), X)
        if y is None:
            return out
        kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        kept = kept.to(y.dtype).view((-1,) + (1,) * (y.ndim - 1))
        return out, torch.lerp(y.roll(1, 0), y, kept)

    def __repr__(self) -> str:
        return f"CutMix(alpha={self.alpha})"


@hookimpl
def register_augmenters(register) -> None:
    register("none", NoAugment)
    register("basic", BasicAugment)
    register("affine", AffineAugment)
    register("color", ColorAugment)
    register("mixup", MixUp)
    register("cutmix", CutMix)
