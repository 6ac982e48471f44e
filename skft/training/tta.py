"""Test-time augmentation: predictions averaged over flipped and cropped views of each image.

The views come from torchvision's v2 functionals (``hflip``, ``five_crop``,
``resize``), applied to whole batches on their device.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..data.adapters import as_float_images

__all__ = ["TTA_CROP", "TTA_DEFAULT", "TTA_VIEWS", "n_tta_views", "predict_tta", "tta_views"]

#: The views ``tta=k`` averages over: the first ``k`` of these (``tta=True``: 4).
#: Crops keep :data:`TTA_CROP` of the side and are resized back (bilinear).
TTA_VIEWS = (
    "original",
    "flip",
    "centre crop",
    "flipped centre crop",
    "top-left crop",
    "top-right crop",
    "bottom-left crop",
    "bottom-right crop",
)
TTA_CROP = 0.875
TTA_DEFAULT = 4


def n_tta_views(tta: Any) -> int:
    """``tta=`` as a number of views: False/0 -> 0 (off), True -> 4, an int 1..8 as given."""
    if tta is None or tta is False:
        return 0
    if tta is True:
        return TTA_DEFAULT
    if isinstance(tta, numbers.Integral) and 0 <= int(tta) <= len(TTA_VIEWS):
        return int(tta)
    raise ValueError(
        f"tta must be False, True ({TTA_DEFAULT} views) or an int number of views in "
        f"0..{len(TTA_VIEWS)} (views in order: {', '.join(TTA_VIEWS)}), got {tta!r}"
    )


def tta_views(X: torch.Tensor, n: int) -> Iterator[torch.Tensor]:
    """Yield the first ``n`` views of :data:`TTA_VIEWS` of a float batch ``(N, C, H, W)``."""
    from torchvision.transforms.v2 import functional as TF

    h, w = X.shape[-2:]
    crop = [max(1, round(h * TTA_CROP)), max(1, round(w * TTA_CROP))]
    crops: dict[str, torch.Tensor] = {}
    for name in TTA_VIEWS[:n]:
        if name.endswith("crop"):
            if not crops:
                tl, tr, bl, br, centre = TF.five_crop(X, crop)
                parts = {"top-left": tl, "top-right": tr, "bottom-left": bl}
                crops = {**parts, "bottom-right": br, "centre": centre}
            view = TF.resize(crops[name.split()[-2]], [h, w], antialias=False)
        else:
            view = X
        yield TF.hflip(view) if name.startswith("flip") else view


def predict_tta(net: Any, Xt: torch.Tensor, views: int) -> np.ndarray:
    """Mean of the predict nonlinearity's output (softmax: probabilities) over ``views`` views."""
    nonlin = net._get_predict_nonlinearity()
    out = []
    for batch in net.get_iterator(net.get_dataset(Xt), training=False):
        Xi = as_float_images(batch[0].to(net.device))
        total = None
        for view in tta_views(Xi, views):
            pred = nonlin(net.evaluation_step((view, None), training=False))
            total = pred if total is None else total + pred
        out.append((total / views).detach().cpu().numpy())
    return np.concatenate(out, 0)
