"""Image decoding and layout, shared by the in-memory adapters and the file streamer.

Arrays to uint8 or float ``(N, C, H, W)``; PIL images and files decoded; resizing
(shorter side, then a centre crop); pandas columns and numpy arrays of paths as lists.

Image files loaded into memory (:func:`load_image_files`) are read once each (the
PIL mode comes from the header in the bytes read, not from a second open), decoded
by a pool of threads, one per core (torchvision's and PIL's decoders and torch's
resize release the GIL), and kept in the decoded-image cache of
:mod:`skft.data.decode_cache`, so a search, ``cross_val_score`` and ``score`` over
the same files decode them once. When the decoding device is CUDA, JPEG files are
decoded there by nvJPEG (``torchvision.io.decode_jpeg(..., device="cuda")``) and
resized there; other formats, and any batch nvJPEG refuses, take the CPU path.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .arrays import as_sequence, channels_last, image_array, is_path, is_pil, one_column
from .decode_cache import decode_cache, file_identity

__all__ = [
    "GRAY_MODES",
    "EncodedFile",
    "array_to_nchw",
    "as_sequence",
    "decode_encoded",
    "decode_file",
    "decode_threads",
    "is_path",
    "is_pil",
    "load_image_files",
    "one_column",
    "open_image",
    "read_image_file",
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
    out = torch.empty((t.shape[0], t.shape[1], size, size), dtype=t.dtype, device=t.device)
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


# --------------------------------------------------------------------------
# image files: read once, decoded by a thread per core (JPEG on CUDA), cached
# --------------------------------------------------------------------------

#: PIL modes decoded as one gray channel; a set of files is gray when all of them are.
GRAY_MODES = ("L", "1", "I;16", "I")
#: Gray modes whose RGB decoding is the gray channel three times (libjpeg-turbo, libpng).
_REPLICATED_GRAY = ("L", "1")
_JPEG_START = b"\xff\xd8\xff"
#: JPEG files handed to nvJPEG per call.
GPU_DECODE_CHUNK = 64


def decode_threads() -> int:
    """Threads that decode image files into memory: every core this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class EncodedFile:
    """An image file's bytes, read once, with what its header says and what identifies it."""

    path: str
    data: bytearray
    #: the PIL mode, read from the header in ``data``
    mode: str
    #: ``(path, inode, size, mtime_ns, ctime_ns)`` of the file read (:func:`file_identity`)
    identity: tuple

    @property
    def gray(self) -> bool:
        return self.mode in GRAY_MODES

    @property
    def jpeg(self) -> bool:
        """A JPEG nvJPEG decodes (gray or colour; CMYK and others take the CPU path)."""
        return self.data[:3] == _JPEG_START and self.mode in ("L", "RGB")


def read_image_file(path: Any) -> EncodedFile:
    """Read ``path`` once: its bytes, identity and PIL mode; errors name the file."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = bytearray(fh.read())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"image file not found: {path}") from exc
    except OSError as exc:  # a folder, no permission
        raise ValueError(f"cannot read image file {path}: {exc}") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only: no decoding yet
            mode = img.mode
    except UnidentifiedImageError:
        raise ValueError(
            f"cannot read image file {path}: cannot identify an image format in its "
            f"{len(data)} bytes"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc
    return EncodedFile(path, data, mode, file_identity(path, st))


def decode_encoded(f: EncodedFile, size: int, channels: int) -> torch.Tensor:
    """An encoded file as uint8 ``(channels, size, size)``: decode, resize the shorter side, crop.

    torchvision decodes (libjpeg-turbo, libpng, ...); PIL decodes what torchvision does not
    decode to uint8. Errors name the file.
    """
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for TorchCodec
            warnings.simplefilter("ignore", DeprecationWarning)
            img = decode_image(torch.frombuffer(f.data, dtype=torch.uint8), mode=mode)
    except (RuntimeError, ValueError):
        img = None
    if img is None or img.dtype != torch.uint8:  # a format torchvision does not decode to uint8
        from torchvision.transforms.v2 import functional as TF

        img = TF.pil_to_tensor(_pil_image(f).convert("L" if channels == 1 else "RGB"))
    return resize(img.unsqueeze(0), size)[0]


def _pil_image(f: EncodedFile):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(f.data)) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image file {f.path}: {exc}") from exc


def decode_file(path: Any, size: int, channels: int) -> torch.Tensor:
    """One image file as uint8 ``(channels, size, size)`` (the streamer's per-item decoder)."""
    return decode_encoded(read_image_file(path), size, channels)


def thread_map(fn: Callable[[Any], Any], items: Sequence[Any], threads: int | None) -> list:
    """``[fn(x) for x in items]`` on ``threads`` threads (None: :func:`decode_threads`).

    Pool threads even for one: there torch's resize of one image runs on one thread,
    where in the main thread it would use torch's intra-op pool, whose threads then
    compete with the decoding threads (on a loaded 2-core machine, 20x slower per image).
    """
    if not items:
        return []
    threads = min(decode_threads() if threads is None else max(int(threads), 1), len(items))
    with ThreadPoolExecutor(threads, thread_name_prefix="skft-decode") as pool:
        return list(pool.map(fn, items))


def decodes_on_cuda(device: Any) -> bool:
    """Whether JPEG files are decoded by nvJPEG for ``device`` (a CUDA device, CUDA present)."""
    if device is None:
        return False
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        return False
    return kind == "cuda" and torch.cuda.is_available()


def load_image_files(
    paths: Sequence[Any],
    size: int,
    *,
    device: Any = None,
    cache: bool = True,
    threads: int | None = None,
) -> torch.Tensor:
    """Image files as one uint8 tensor ``(N, C, size, size)``, on the CPU.

    ``C`` is 1 when every file is gray (by its PIL mode), else 3: a gray file among
    colour ones has its channel repeated, as an RGB decoder would (16-bit gray files
    are decoded again as RGB). Each file is read once and decoded on one of
    ``threads`` threads (None: one per core). With ``device`` a CUDA device, JPEG
    files are decoded and resized there (nvJPEG; a few pixel levels from
    libjpeg-turbo's) and the rest on the CPU. With ``cache``, decoded files come
    from, and go to, :data:`skft.data.decode_cache.decode_cache`.
    """
    paths = [os.fspath(p) for p in paths]
    decoder = "cuda" if decodes_on_cuda(device) else "cpu"
    store = decode_cache if cache and decode_cache.enabled else None

    def native(path: str) -> tuple[torch.Tensor | EncodedFile, str]:
        f = read_image_file(path)
        if decoder == "cuda" and f.jpeg:
            return f, f.mode  # decoded below, in batches, on the device
        img = decode_encoded(f, size, 1 if f.gray else 3)
        if store is not None:
            store.put(f.identity, size, decoder, img, f.mode)
        return img, f.mode

    # hits first, in this thread (a stat and a look-up each: cheaper than a pool's hand-off)
    found = [store.get(p, size, decoder) for p in paths] if store is not None else []
    missing = [i for i, hit in enumerate(found) if hit is None] if found else range(len(paths))
    if decoder == "cpu":
        decoded = found or [None] * len(paths)
        for i, item in zip(missing, thread_map(native, [paths[i] for i in missing], threads)):
            decoded[i] = item
        return _stack(decoded, paths, size, decoder, store, threads)
    decoded = found or [None] * len(paths)
    block = 4 * GPU_DECODE_CHUNK  # the JPEG bytes waiting for the GPU: a few blocks' worth
    for start in range(0, len(missing), block):
        rows = missing[start : start + block]
        part = thread_map(native, [paths[i] for i in rows], threads)
        pending = [i for i, (img, _) in enumerate(part) if isinstance(img, EncodedFile)]
        files = [part[i][0] for i in pending]
        for i, f, img in zip(pending, files, decode_jpegs_on(device, files, size, threads)):
            part[i] = (img, f.mode)
            if store is not None:
                store.put(f.identity, size, decoder, img, f.mode)
        for i, item in zip(rows, part):
            decoded[i] = item
    return _stack(decoded, paths, size, decoder, store, threads)


def _stack(decoded: list, paths: list[str], size: int, decoder: str, store: Any, threads: Any):
    channels = 1 if all(mode in GRAY_MODES for _, mode in decoded) else 3
    imgs = [img for img, _ in decoded]
    again = [
        i
        for i, (img, mode) in enumerate(decoded)
        if img.shape[0] != channels and mode not in _REPLICATED_GRAY
    ]

    def as_rgb(path: str) -> torch.Tensor:
        hit = store.get(path, size, decoder, "rgb") if store is not None else None
        if hit is not None:
            return hit[0]
        f = read_image_file(path)
        img = decode_encoded(f, size, 3)
        if store is not None:
            store.put(f.identity, size, decoder, img, f.mode, "rgb")
        return img

    for i, img in zip(again, thread_map(as_rgb, [paths[i] for i in again], threads)):
        imgs[i] = img
    out = torch.empty((len(imgs), channels, size, size), dtype=torch.uint8)

    def fill(rows: range) -> None:  # copied in the pool too, not by the caller's intra-op pool
        for i in rows:
            out[i].copy_(imgs[i].expand(channels, -1, -1))

    step = max(len(imgs) // max(decode_threads() if threads is None else int(threads), 1), 1)
    thread_map(
        fill, [range(a, min(a + step, len(imgs))) for a in range(0, len(imgs), step)], threads
    )
    return out


def decode_jpegs_on(
    device: Any, files: Sequence[EncodedFile], size: int, threads: int | None = None
) -> list[torch.Tensor]:
    """JPEG files decoded and resized on the CUDA ``device``, as CPU tensors ``(C, size, size)``.

    nvJPEG decodes up to :data:`GPU_DECODE_CHUNK` files per call; a chunk it refuses
    (or any chunk when CUDA is missing) is decoded on the CPU, file by file.
    """
    out: list[torch.Tensor | None] = [None] * len(files)
    for gray in (True, False):
        idx = [i for i, f in enumerate(files) if f.gray == gray]
        for start in range(0, len(idx), GPU_DECODE_CHUNK):
            chunk = idx[start : start + GPU_DECODE_CHUNK]
            try:
                imgs = _nvjpeg([files[i] for i in chunk], gray, size, device)
            except (RuntimeError, ValueError, AssertionError):  # then the CPU path
                imgs = thread_map(
                    lambda f, c=1 if gray else 3: decode_encoded(f, size, c),
                    [files[i] for i in chunk],
                    threads,
                )
            for i, img in zip(chunk, imgs):
                out[i] = img
    return out  # type: ignore[return-value]


def _nvjpeg(files: Sequence[EncodedFile], gray: bool, size: int, device: Any) -> list:
    from torchvision.io import ImageReadMode, decode_jpeg

    if not decodes_on_cuda(device):
        raise RuntimeError("no CUDA device to decode on")
    datas = [torch.frombuffer(f.data, dtype=torch.uint8) for f in files]
    mode = ImageReadMode.GRAY if gray else ImageReadMode.RGB
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        imgs = decode_jpeg(datas, mode=mode, device=device)
    resized = torch.stack([resize(img.unsqueeze(0), size)[0] for img in imgs]).cpu()
    return [img.clone() for img in resized.unbind(0)]  # own storage: cached one by one
