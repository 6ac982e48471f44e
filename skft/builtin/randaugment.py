"""Built-in ``randaugment``: RandAugment with per-sample operations, vectorised over the batch.

torchvision's ``v2.RandAugment`` applied to a batched tensor picks one
operation and one magnitude for the whole batch; this one picks them for
every sample, and groups the samples by operation so each operation runs as
one batched kernel (all geometric operations share one ``grid_sample``).

Strength scale, defined once: the magnitude of every operation is
``strength`` times its maximum, and the maxima are those of timm's (and
torchvision's) RandAugment at magnitude 10 of 10. So ``strength=0.9`` is
timm's ``rand-m9``; torchvision's default ``magnitude=9`` of 31 bins is
``strength=0.3``. Each sample gets ``ceil(strength * num_ops)`` operations
(1 up to strength ``1/num_ops``, then more), chosen uniformly at random with
repetition; signed operations get a random sign per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..hookspecs import hookimpl
from ..params.constraints import Integral, Interval, check_parameters
from ..specs import Augmenter
from .augmenters import affine, gray, per_sample

__all__ = ["OPS", "RandAugment", "search_space"]

#: Geometric operations: maximum magnitude (degrees, shear factor, fraction of the side).
GEOMETRIC = {
    "rotate": 30.0,
    "shear_x": 0.3,
    "shear_y": 0.3,
    "translate_x": 0.45,
    "translate_y": 0.45,
}


def _enhance(X: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: ``degenerate + factor * (X - degenerate)``, clamped."""
    return torch.lerp(degenerate, X, per_sample(factor)).clamp_(0, 1)


def _brightness(X, m, sign):
    return _enhance(X, torch.zeros_like(X), 1 + 0.9 * m * sign)


def _contrast(X, m, sign):
    mean = gray(X).mean(dim=(1, 2, 3), keepdim=True)
    return _enhance(X, mean.expand_as(X), 1 + 0.9 * m * sign)


def _color(X, m, sign):
    if X.shape[1] == 1:
        return X  # saturation of a grayscale image: nothing to change
    return _enhance(X, gray(X).expand_as(X), 1 + 0.9 * m * sign)


def _sharpness(X, m, sign):
    c = X.shape[1]
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=X.device)
    kernel = (kernel / 13).to(X.dtype).expand(c, 1, 3, 3)
    smooth = X.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(X, kernel, groups=c)  # borders stay as they are (PIL)
    return _enhance(X, smooth, 1 + 0.9 * m * sign)


def _posterize(X, m, sign):
    bits = 8 - round(4 * m)  # 8 bits (identity) down to 4 at the maximum
    if bits >= 8:
        return X
    step = 2 ** (8 - bits)  # keep the top ``bits`` bits of the 8-bit value (PIL)
    return torch.floor((X * 255).round_() / step) * (step / 255)


def _solarize(X, m, sign):
    threshold = 1.0 - m  # nothing at 0, every pixel inverted at the maximum
    return torch.where(X >= threshold, 1.0 - X, X)


def _autocontrast(X, m, sign):
    lo = X.amin(dim=(2, 3), keepdim=True)
    hi = X.amax(dim=(2, 3), keepdim=True)
    scale = torch.where(hi > lo, 1.0 / (hi - lo), torch.ones_like(hi))
    stretched = torch.where(hi > lo, (X - lo) * scale, X)
    return torch.lerp(X, stretched, m)


def _equalize(X, m, sign):
    n, c, h, w = X.shape
    q = (X * 255).round_().clamp_(0, 255).long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=X.device, dtype=X.dtype)
    hist.scatter_add_(1, q, torch.ones_like(q, dtype=X.dtype))
    cdf = hist.cumsum(1)
    cdf_min = torch.where(hist > 0, cdf, torch.full_like(cdf, float(h * w))).amin(1, keepdim=True)
    span = (h * w - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / span).clamp_(0, 1)
    equalized = lut.gather(1, q).view(n, c, h, w)
    flat = (cdf_min >= h * w).view(n, c, 1, 1)  # one grey level: nothing to equalise
    return torch.lerp(X, torch.where(flat, X, equalized), m)


#: Non-geometric operations: ``op(X_subset, magnitude in [0, 1], signs) -> X_subset``.
PIXEL: dict[str, Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]] = {
    "brightness": _brightness,
    "contrast": _contrast,
    "color": _color,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "solarize": _solarize,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
}

#: Every operation name, in the order used for random choices.
OPS = (*GEOMETRIC, *PIXEL)


class RandAugment(Augmenter):
    """RandAugment with per-sample operations; magnitude and count from strength.

    Parameters (``augment__*``)
    ---------------------------
    num_ops : int
        Operations per sample at strength 1 (timm's ``n``, default 2); a
        sample gets ``ceil(strength * num_ops)``.
    ops : sequence of str or None
        A subset of :data:`OPS` to choose from (default: all 13).

    Maxima at strength 1 (timm/torchvision magnitude 10): rotate 30 degrees,
    shear 0.3, translate 0.45 of the side, brightness/contrast/color/
    sharpness factors 1 ± 0.9, posterize to 4 bits, solarize threshold 0
    (all pixels), autocontrast and equalize fully applied (below 1 they are
    blended with the input by the magnitude, so they too grow with strength).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "num_ops": [Interval(Integral, 1, 10, closed="both")],
    }

    def __init__(self, num_ops: int = 2, ops: Sequence[str] | None = None) -> None:
        check_parameters(self._parameter_constraints, {"num_ops": num_ops}, "augment__")
        if ops is not None:
            if isinstance(ops, str) or not ops:
                raise ValueError(f"augment__ops must be a non-empty list of names, got {ops!r}")
            unknown = [op for op in ops if op not in OPS]
            if unknown:
                raise ValueError(f"augment__ops: unknown operations {unknown}; known: {list(OPS)}")
        self.num_ops, self.ops = num_ops, ops

    def __call__(self, X: torch.Tensor, strength: float, generator: torch.Generator):
        if strength <= 0:
            return X
        names = tuple(self.ops) if self.ops is not None else OPS
        n, m = X.shape[0], float(strength)
        active = max(1, math.ceil(m * self.num_ops - 1e-9))
        out = X
        for slot in range(self.num_ops):
            # drawn for every slot at every strength: the same seed makes the same choices
            choice = torch.randint(len(names), (n,), generator=generator, device=X.device)
            u = torch.rand(n, generator=generator, device=X.device, dtype=X.dtype)
            if slot < active:
                out = self._apply(out, names, choice, torch.where(u < 0.5, -1.0, 1.0), m)
        return out

    @staticmethod
    def _apply(X, names, choice, sign, m):
        new = X.clone()
        geometric = [i for i, name in enumerate(names) if name in GEOMETRIC]
        if geometric:
            is_geo = torch.isin(choice, torch.tensor(geometric, device=X.device))
            idx = is_geo.nonzero().squeeze(1)
            if idx.numel():
                new[idx] = affine(X[idx], _theta(names, choice[idx], sign[idx], m, X.dtype))
        for k, name in enumerate(names):
            if name in PIXEL:
                idx = (choice == k).nonzero().squeeze(1)
                if idx.numel():
                    new[idx] = PIXEL[name](X[idx], m, sign[idx].to(X.dtype))
        return new

    def __repr__(self) -> str:
        return f"RandAugment(num_ops={self.num_ops}, ops={self.ops!r})"


def _theta(names, choice, sign, m, dtype) -> torch.Tensor:
    """One ``(2, 3)`` affine matrix per sample for its geometric operation."""
    n = choice.shape[0]
    theta = torch.zeros(n, 2, 3, device=choice.device, dtype=dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    for k, name in enumerate(names):
        if name not in GEOMETRIC:
            continue
        sel = choice == k
        v = sign.to(dtype) * GEOMETRIC[name] * m
        if name == "rotate":
            a = v * (math.pi / 180)
            rot = torch.stack([a.cos(), -a.sin(), a.sin(), a.cos()], 1).view(n, 2, 2)
            theta[:, :, :2] = torch.where(sel.view(n, 1, 1), rot, theta[:, :, :2])
        elif name == "shear_x":
            theta[:, 0, 1] = torch.where(sel, v, theta[:, 0, 1])
        elif name == "shear_y":
            theta[:, 1, 0] = torch.where(sel, v, theta[:, 1, 0])
        elif name == "translate_x":
            theta[:, 0, 2] = torch.where(sel, 2 * v, theta[:, 0, 2])  # grid spans 2
        else:
            theta[:, 1, 2] = torch.where(sel, 2 * v, theta[:, 1, 2])
    return theta


@hookimpl
def search_space(estimator: Any) -> dict[str, Any] | None:
    """``augment__num_ops`` (1..3) when the estimator's ``augment=`` uses ``randaugment``.

    In a composition the parameter is the component's:
    ``augment__randaugment__num_ops`` for ``augment="basic+randaugment"``.
    """
    from ..search.space import chosen_augmenters

    prefixes = [
        prefix for prefix, factory in chosen_augmenters(estimator) if factory is RandAugment
    ]
    if not prefixes:
        return None
    from optuna.distributions import IntDistribution

    return {prefix + "num_ops": IntDistribution(1, 3) for prefix in prefixes}


@hookimpl
def register_augmenters(register) -> None:
    register("randaugment", RandAugment, aliases=("rand",))
