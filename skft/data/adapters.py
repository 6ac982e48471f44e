"""Input adapters (user X to batch tensors) and a fast in-memory batch loader."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array
from torch.utils.data import Subset

from ..params.defaults import effective
from .images import (
    array_to_nchw,
    as_sequence,
    is_path,
    is_pil,
    load_image_files,
    resize,
    stack_pil,
)
from .streaming import ImageFiles, image_files

__all__ = [
    "BatchLoader",
    "ShuffledBatchLoader",
    "adapt_images",
    "adapt_input",
    "adapt_tabular",
    "as_float_images",
    "sample_lengths",
    "set_input_tags",
    "trim_to_longest",
]


def adapt_tabular(X: Any, image_size: int | None = None) -> torch.Tensor:
    """2-D numeric X (numpy, pandas, lists, torch) to a float32 tensor ``(N, F)``."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = check_array(X, dtype=np.float32, ensure_all_finite=True, ensure_min_samples=1)
    return torch.from_numpy(np.ascontiguousarray(X))


def adapt_images(
    X: Any, image_size: int, device: Any = None, decode_cache: bool = True
) -> torch.Tensor:
    """Images in any supported layout to ``(N, C, S, S)`` with C in {1, 3}.

    Accepts numpy/torch arrays ``(N,H,W)``, ``(N,H,W,C)`` or ``(N,C,H,W)``
    (uint8 in 0..255 or float in [0, 1]); PIL images or image file paths as
    a list, a 1-D numpy array or a pandas Series (or a one-column DataFrame).
    Images are resized (shorter side to ``image_size``, antialiased bilinear,
    then a centre crop) along one path whatever the container, so the same
    picture gives the same tensor. uint8 input stays uint8 to save memory;
    float input becomes float32.

    Files are decoded by :func:`skft.data.images.load_image_files`: a thread per
    core, JPEG on the GPU when ``device`` is a CUDA device (``"auto"`` resolved),
    through the decoded-image cache unless ``decode_cache`` is false.
    """
    X = as_sequence(X)
    if isinstance(X, (list, tuple)) and len(X) and is_path(X[0]):
        _refuse_text(X[0])
        if not all(is_path(p) for p in X):
            raise TypeError("a list X must hold only PIL images or only file paths")
        from ..training.device import resolve_device

        device = resolve_device(device)  # the decoder streaming uses: same pixels on the CPU
        return load_image_files(X, image_size, device=device, cache=decode_cache is not False)
    if isinstance(X, (list, tuple)) and len(X) and is_pil(X[0]):
        return stack_pil(list(X), image_size)
    if isinstance(X, (str, os.PathLike)) or is_pil(X):
        raise TypeError(
            "X must be a collection of images (a list of paths or PIL images, or an array)"
        )
    return resize(array_to_nchw(X), image_size)


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def _refuse_text(item: Any) -> None:
    """Strings that are neither image files nor named like them are text, not paths."""
    if isinstance(item, str) and not os.path.exists(item):
        if os.path.splitext(item)[1].lower() not in _IMAGE_SUFFIXES:
            raise ValueError(
                f"strings given to an image backbone; use a text backbone (e.g. "
                f"backbone='minilm' from skft-transformers) or pass image file paths "
                f"(first item: {item[:60]!r})"
            )


def as_float_images(X: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [0, 1]; float images unchanged."""
    return X.float().div_(255) if X.dtype == torch.uint8 else X


def adapt_input(net: Any, X: Any, fitting: bool, y: Any = False) -> torch.Tensor:
    """Adapt ``X`` with the backbone's input adapter; check its shape when not ``fitting``.

    The adapter is the backbone spec's own, else its input kind's
    (:class:`skft.specs.InputKind`). At fit time the estimator records the
    per-sample shape as ``input_shape_`` (and ``n_features_in_`` for tabular
    input); later calls must match it. With targets ``y`` (fitting), their
    presence and length are checked too.
    """
    if y is None:
        raise ValueError(f"{type(net).__name__} requires y to be passed, but the target y is None")
    if X is None:
        raise ValueError("X is None")
    if isinstance(X, torch.utils.data.Dataset) and not fitting:
        return X  # skorch's own validation scoring hands back our adapted data
    spec, kind = net.backbone_spec_, net.input_kind_
    adapter = spec.adapter or kind.adapter
    options = {name: effective(net, name) for name in kind.options}  # e.g. max_length
    size = net.image_size or spec.default_image_size
    Xt = image_files(net, X, size) if kind.name == "image" and spec.adapter is None else None
    if Xt is None:  # not streamed (skft.data.streaming): adapted in memory
        Xt = adapter(X, image_size=size, **options)
    shape = tuple(Xt.shape[1:])
    fixed = slice(0, -1 if kind.variable_length else None)  # text: any sequence length
    if not fitting and shape[fixed] != net.input_shape_[fixed]:
        name = type(net).__name__
        if kind.name == "tabular":
            raise ValueError(
                f"X has {shape[0]} features, but {name} is expecting "
                f"{net.input_shape_[0]} features as input."
            )
        raise ValueError(
            f"X has input shape {shape} after adaptation, but {name} was "
            f"fitted on {net.input_shape_} (channels must match)"
        )
    if y is not False and len(Xt) != len(y):
        raise ValueError(f"X and y have different lengths: {len(Xt)} samples in X, {len(y)} in y")
    return Xt


def set_input_tags(tags: Any, backbone: Any) -> Any:
    """scikit-learn's input tags for the input kind of ``backbone`` (images if unknown)."""
    from ..plugins import get_backbone

    try:
        kind = get_backbone(backbone).input_kind
    except (ValueError, TypeError):
        kind = "image"
    tags.input_tags.two_d_array = kind == "tabular"
    tags.input_tags.three_d_array = kind == "image"
    tags.input_tags.string = kind == "text"
    return tags


# --------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------


def sample_lengths(kind: Any, X: Any) -> torch.Tensor | None:
    """Each sample's length in adapted ``X``, on the CPU, for a kind that declares
    :attr:`~skft.specs.InputKind.lengths` (text); ``None`` for the others."""
    if kind is None or kind.lengths is None or not isinstance(X, torch.Tensor):
        return None
    return torch.as_tensor(kind.lengths(X.cpu()), dtype=torch.long).cpu()


def trim_to_longest(batch: torch.Tensor, lengths: torch.Tensor, axis: int) -> torch.Tensor:
    """``batch`` cut along ``axis`` to its longest sample (``lengths``: the batch's, on the CPU).

    The length is a host number: no read-back from the device, wherever the batch is.
    """
    longest = max(int(lengths.max()), 1) if len(lengths) else 1
    return batch.narrow(axis, 0, longest) if longest < batch.shape[axis] else batch


class BatchLoader:
    """Batches sliced straight from in-memory tensors: one gather per batch.

    A drop-in for skorch's ``iterator_train``/``iterator_valid`` when the
    dataset is a skorch ``Dataset`` (or a ``Subset`` of one) over tensors;
    torch's ``DataLoader`` collates sample by sample, which costs more than
    a small model's step. Other datasets are read item by item. A dataset
    with ``sample_lengths`` (a CPU tensor, variable-length input) and
    ``length_axis`` has each batch trimmed to its own longest sample there,
    with the length known on the host (:func:`trim_to_longest`).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.dataset, self.shuffle = dataset, shuffle
        self.drop_last, self.generator = drop_last, generator
        ds, self.indices = dataset, None
        if isinstance(ds, Subset):
            ds, self.indices = ds.dataset, torch.as_tensor(ds.indices, dtype=torch.long)
        X, y = getattr(ds, "X", None), getattr(ds, "y", None)
        self.files = X if isinstance(X, ImageFiles) else None  # streamed: DataLoader workers
        self.X = X if isinstance(X, torch.Tensor) else None
        self.y = y if isinstance(y, torch.Tensor) else None
        self.lengths = getattr(ds, "sample_lengths", None)
        self.length_axis = getattr(ds, "length_axis", -1)
        self.n = len(dataset)
        # skorch's convention: batch_size=-1 puts every sample in one batch
        self.batch_size = max(self.n, 1) if batch_size == -1 else int(batch_size)

    def __len__(self) -> int:
        full = self.n // self.batch_size
        return full if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        order = (
            torch.randperm(self.n, generator=self.generator)
            if self.shuffle
            else torch.arange(self.n)
        )
        if self.files is not None:
            yield from self.files.batches(self.dataset, order, self.batch_size, len(self))
            return
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            sel = order[start : start + self.batch_size]
            if self.X is None:
                items = [self.dataset[int(i)] for i in sel]
                yield tuple(torch.utils.data.default_collate(items))
                continue
            idx = sel if self.indices is None else self.indices[sel]
            yb = self.y[idx] if self.y is not None else torch.zeros(len(idx))
            Xb = self.X[idx]
            if self.lengths is not None:
                Xb = trim_to_longest(Xb, self.lengths[idx], self.length_axis)
            yield Xb, yb


class ShuffledBatchLoader(BatchLoader):
    """:class:`BatchLoader` that shuffles by default (skft's ``iterator_train``)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dataset, batch_size, shuffle, drop_last, generator)
