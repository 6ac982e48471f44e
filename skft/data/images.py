"""Image decoding and layout, shared by the in-memory adapters and the file streamer.

Arrays to uint8 or float ``(N, C, H, W)``; PIL images and files decoded; resizing
(shorter side, then a centre crop); pandas columns and numpy arrays of paths as lists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "array_to_nchw",
    "as_sequence",
    "is_path",
    "is_pil",
    "one_column",
    "open_image",
    "resize",
    "stack_pil",
]

_RESIZE_CHUNK = 256


# --------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------


def array_to_nchw(X: Any) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        t = X.detach().cpu()
        layout_hint = "nchw"
    else:
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
        layout_hint = "nhwc"
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError("X is empty: found array with 0 sample(s); at least 1 is required")
    if t.is_complex():
        raise ValueError("Complex data not supported")
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.ndim == 4:
        t = to_nchw(t, layout_hint)
    else:
        raise ValueError(
            f"image X must be 3-D (N,H,W) or 4-D (N,H,W,C)/(N,C,H,W); got shape {tuple(t.shape)}"
            + (". 2-D X is tabular: use backbone='mlp'" if t.ndim == 2 else "")
        )
    if 0 in t.shape[2:]:
        raise ValueError(f"images have no pixels: X has shape {tuple(X.shape)} (height or width 0)")
    if t.dtype == torch.bool:
        t = t.float()
    if t.dtype == torch.uint8:
        return t.contiguous()
    if not t.is_floating_point():  # other integer types: 0..255 pixel values
        if t.min() < 0 or t.max() > 255:
            raise ValueError("integer images must hold values in 0..255")
        return t.to(torch.uint8).contiguous()
    t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError("Input X contains NaN or infinity.")
    return t.contiguous()


def to_nchw(t: torch.Tensor, hint: str) -> torch.Tensor:
    first, last = t.shape[1] in (1, 3), t.shape[3] in (1, 3)
    if first and (not last or hint == "nchw"):
        return t
    if last:
        return t.permute(0, 3, 1, 2)
    raise ValueError(
        f"cannot find a channel axis of size 1 or 3 in X of shape {tuple(t.shape)}: "
        "skft adapts grayscale (1) and RGB (3) images, as (N,H,W,C) or (N,C,H,W)"
    )


def resize(t: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to ``size`` (antialiased bilinear), then a centre crop to ``size x size``."""
    from torchvision.transforms.v2 import functional as TF

    if tuple(t.shape[-2:]) == (size, size):
        return t
    out = torch.empty((t.shape[0], t.shape[1], size, size), dtype=t.dtype)
    for start in range(0, t.shape[0], _RESIZE_CHUNK):
        chunk = TF.resize(t[start : start + _RESIZE_CHUNK], [size], antialias=True)
        out[start : start + _RESIZE_CHUNK] = TF.center_crop(chunk, [size, size])
    return out


# --------------------------------------------------------------------------
# PIL images and files
# --------------------------------------------------------------------------


def is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def open_image(path: Any):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc


def stack_pil(images: Sequence[Any], size: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    if not all(is_pil(im) for im in images):
        raise TypeError("a list X must hold only PIL images or only file paths")
    gray = all(im.mode in ("L", "1", "I;16", "I") for im in images)
    out = torch.empty((len(images), 1 if gray else 3, size, size), dtype=torch.uint8)
    for i, im in enumerate(images):
        pixels = TF.pil_to_tensor(im.convert("L" if gray else "RGB"))
        out[i] = resize(pixels.unsqueeze(0), size)[0]
    return out


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
