"""Image arrays to checked ``(N, C, H, W)`` numpy arrays, and containers to lists: no torch.

The in-memory adapters (:mod:`skft.data.images`) and deploy folders
(:mod:`skft.deploy.deployed`, which must not need torch) share these, so that one
array gives the same pixels on both paths.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["as_sequence", "image_array", "is_path", "is_pil", "one_column", "to_float"]


def image_array(X: Any, layout_hint: str = "nhwc") -> np.ndarray:
    """``X`` as a C-contiguous ``(N, C, H, W)`` array: uint8 pixels, or float32.

    ``(N, H, W)`` gains a channel axis; a 4-D array keeps its channel axis where
    it has size 1 or 3 (``layout_hint`` decides when both the second and the last
    axis could be it). Other integer types must hold 0..255 and become uint8;
    bool and float types become float32, which must be finite.
    """
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"X could not be read as an image array: {exc}") from exc
    if arr.dtype == object:
        raise TypeError(
            "X has dtype object; pass a numeric array, a list of PIL images or a list of paths"
        )
    if np.iscomplexobj(arr):
        raise ValueError("Complex data not supported")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError("X is empty: found array with 0 sample(s); at least 1 is required")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2) if channels_last(arr.shape, layout_hint) else arr
    else:
        raise ValueError(
            f"image X must be 3-D (N,H,W) or 4-D (N,H,W,C)/(N,C,H,W); got shape {arr.shape}"
            + (". 2-D X is tabular: use backbone='mlp'" if arr.ndim == 2 else "")
        )
    if 0 in arr.shape[2:]:
        raise ValueError(f"images have no pixels: X has shape {np.shape(X)} (height or width 0)")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind in "iu":  # other integer types: 0..255 pixel values
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("integer images must hold values in 0..255")
        return np.ascontiguousarray(arr, dtype=np.uint8)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("Input X contains NaN or infinity.")
    return arr


def channels_last(shape: tuple[int, ...], layout_hint: str) -> bool:
    """Whether a 4-D image batch of ``shape`` holds its channels on the last axis."""
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first and (not last or layout_hint == "nchw"):
        return False
    if last:
        return True
    raise ValueError(
        f"cannot find a channel axis of size 1 or 3 in X of shape {tuple(shape)}: "
        "skft adapts grayscale (1) and RGB (3) images, as (N,H,W,C) or (N,C,H,W)"
    )


def to_float(X: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]; float32 unchanged (what exported models take)."""
    return X.astype(np.float32) / np.float32(255) if X.dtype == np.uint8 else X


# --------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------


def is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def one_column(X: Any, holds: str) -> Any:
    """A pandas Series, or a one-column DataFrame, as a 1-D numpy array; other X unchanged.

    ``holds`` completes the error for a DataFrame of several columns: "pass the one
    column that holds ``holds``". Input adapters (plugins' too) share this.
    """
    columns = getattr(X, "columns", None)
    if columns is not None and getattr(X, "ndim", 0) == 2:  # a DataFrame
        if len(columns) != 1:
            raise ValueError(
                f"X is a DataFrame with {len(columns)} columns {list(columns)[:5]}; pass the "
                f"one column that holds {holds}"
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and getattr(X, "ndim", 0) == 1:  # a Series
        X = X.to_numpy()
    return X


def as_sequence(X: Any) -> Any:
    """Paths or PIL images held in a numpy array or a pandas object, as a list."""
    X = one_column(X, "image paths (e.g. X['path']) or an image array")
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OUS":
        return [x.decode() if isinstance(x, bytes) else x for x in X.tolist()]
    return X
