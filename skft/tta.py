"""Test-time augmentation: predictions averaged over views of each image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .augment import tta_views
from .data import as_float_images

__all__ = ["predict_tta"]


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
