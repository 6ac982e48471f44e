"""Image decoding and layout, shared by the in-memory adapters and the file streamer.

Arrays to uint8 or float ``(N, C, H, W)``; PIL images and files decoded; resizing
(shorter side, then a centre crop); pandas columns and numpy arrays of paths as lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .arrays import as_sequence, channels_last, image_array, is_path, is_pil, one_column

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
    """``X`` as a contiguous ``(N, C, H, W)`` tensor: uint8 pixels, or float32.

    Arrays go through :func:`skft.data.arrays.image_array` (what deploy folders use
    too); tensors are checked the same way on their own device-free copy.
    """
    if not isinstance(X, torch.Tensor):
        return torch.from_numpy(image_array(X))
    t = X.detach().cpu()
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError("X is empty: found array with 0 sample(s); at least 1 is required")
    if t.is_complex():
        raise ValueError("Complex data not supported")
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif t.ndim == 4:
        t = to_nchw(t, "nchw")
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
    return t.permute(0, 3, 1, 2) if channels_last(tuple(t.shape), hint) else t


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
