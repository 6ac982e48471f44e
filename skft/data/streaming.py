"""Image files read batch by batch: data larger than memory, decoded by DataLoader workers.

A list of image paths becomes an :class:`ImageFiles`: a lazy sequence of
uint8 tensors ``(C, S, S)``. Each item is decoded by
:func:`skft.data.images.decode_file` (torchvision, PIL for formats it cannot
read), then resized and centre-cropped by the one resize path of
:mod:`skft.data.images`, so a file gives the same pixels whether it is streamed
or loaded into memory on the CPU (in-memory loading decodes with the same
functions, in threads, and caches them). Batches come from a
``torch.utils.data.DataLoader`` whose worker processes decode; augmentation
stays on the device, as for in-memory data.

``streaming="auto"`` (the estimators' default) streams paths whose decoded
size, ``N * C * S * S`` bytes, exceeds :data:`STREAM_ABOVE_BYTES`
(``SKFT_STREAM_ABOVE_MB`` overrides it); ``True`` streams any list of paths
and ``False`` always loads into memory. Arrays and PIL images are already in
memory and never stream. The frozen-prefix feature cache is off for
streamed data (it would hold one feature row per image in memory, which is
what streaming avoids); test-time augmentation works on streamed batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .images import GRAY_MODES, as_sequence, decode_file, is_path, thread_map

__all__ = [
    "STREAM_ABOVE_BYTES",
    "ImageFiles",
    "decode_file",
    "default_num_workers",
    "image_files",
]

#: ``streaming="auto"`` streams image paths above this decoded size (bytes).
STREAM_ABOVE_BYTES = int(float(os.environ.get("SKFT_STREAM_ABOVE_MB", "1024")) * 2**20)


def default_num_workers() -> int:
    """Decoding workers for ``num_workers=None``: half the CPU cores, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _header_mode(path: Any) -> str:
    """The PIL mode of an image file, from its header (no decoding); clear errors."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.mode
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc


class ImageFiles(Sequence):
    """Image files as a lazy sequence of uint8 tensors ``(C, size, size)``.

    ``channels`` is 1 when every file is grayscale (read from the file
    headers before any decoding), else 3, as for in-memory loading. Indexing with an int decodes
    one file; with a slice or an index array, a stacked batch. ``num_workers``
    and ``pin_memory`` say how :meth:`batches` loads it.
    """

    dtype = torch.uint8

    def __init__(
        self,
        paths: Sequence[Any],
        size: int,
        channels: int | None = None,
        num_workers: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        if channels is None:
            gray = all(_header_mode(p) in GRAY_MODES for p in self.paths)
            channels = 1 if gray else 3
        self.size, self.channels = int(size), int(channels)
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        self.pin_memory = bool(pin_memory)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.channels, self.size, self.size)

    @property
    def nbytes(self) -> int:
        """Bytes the decoded images would take in memory."""
        n, c, h, w = self.shape
        return n * c * h * w

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, slice):
            return self.load(range(len(self))[index])
        if isinstance(index, (torch.Tensor,)) or hasattr(index, "__len__"):
            return self.load([int(i) for i in index])
        return decode_file(self.paths[index], self.size, self.channels)

    def load(self, indices: Sequence[int] | None = None) -> torch.Tensor:
        """Decode ``indices`` (all files by default) into one uint8 tensor, in this process
        (a thread per core)."""
        indices = range(len(self)) if indices is None else indices
        out = torch.empty((len(indices), self.channels, self.size, self.size), dtype=torch.uint8)
        decode = lambda i: decode_file(self.paths[i], self.size, self.channels)  # noqa: E731
        for row, img in enumerate(thread_map(decode, list(indices), None)):
            out[row] = img
        return out

    def fingerprint(self) -> bytes:
        """What identifies the data without decoding it: paths, sizes and modification times."""
        parts = [f"{self.shape}"]
        for p in self.paths:
            st = os.stat(p)
            parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
        return "\n".join(parts).encode()

    def batches(
        self, dataset: Any, order: torch.Tensor, batch_size: int, n_batches: int
    ) -> Iterator[Any]:
        """Batches of ``dataset`` (whose samples index this sequence) in ``order``, via workers.

        The DataLoader gets its own generator, so loading draws nothing from
        torch's global RNG: shuffling, dropout and initialization see the same
        random numbers as with in-memory data.
        """
        import torchvision.io  # noqa: F401 - imported once here, not in every new worker
        from torchvision.transforms.v2 import functional  # noqa: F401

        index_batches = [
            order[start : start + batch_size].tolist()
            for start in range(0, n_batches * batch_size, batch_size)
        ]
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=index_batches,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(0),
            persistent_workers=False,
        )
        yield from loader


def image_files(net: Any, X: Any, size: int) -> ImageFiles | None:
    """``X`` as :class:`ImageFiles` when it is a list of paths that streams, else ``None``.

    ``net.streaming``: "auto" (by decoded size, see :data:`STREAM_ABOVE_BYTES`),
    True or False. ``True`` with anything but paths is an error.
    """
    streaming = getattr(net, "streaming", False)
    if streaming is False:
        return None
    X = as_sequence(X)
    paths = isinstance(X, (list, tuple)) and len(X) > 0 and all(is_path(x) for x in X)
    if not paths:
        if streaming is True:
            raise ValueError(
                "streaming=True streams image files: X must be a list of paths "
                f"(got {type(X).__name__}); use streaming='auto' or False for in-memory data"
            )
        return None
    if streaming == "auto" and len(X) * 3 * size * size <= STREAM_ABOVE_BYTES:
        return None  # fits in memory even as RGB: no need to read the headers twice
    from ..training.device import resolve_device

    device = str(resolve_device(getattr(net, "device", "cpu")) or "cpu")
    return ImageFiles(X, size, num_workers=net.num_workers, pin_memory=device.startswith("cuda"))
