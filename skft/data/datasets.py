"""Loaders that return image data sets as arrays: digits, image folders, .npz files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..warn import warn_at_caller

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageData",
    "SkippedFilesWarning",
    "load_data",
    "load_digits_images",
    "load_image_folder",
    "load_npz",
]

#: File name endings :func:`load_image_folder` reads as images (case-insensitive).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
)

_DECODE_CHUNK = 64  # images decoded at full size before each resize: bounds peak memory
_LISTED = 50  # skipped files named one by one in the warning


class ImageData(NamedTuple):
    """What the loaders return: unpacks as ``X, y, ids = load_...(...)``."""

    #: uint8 array ``(N, S, S, C)`` (C 1 or 3), a float array, or a list of file paths
    images: Any
    #: one label per image (a class folder's name), or ``None`` for unlabelled data
    labels: np.ndarray | None
    #: one id per image: the file path relative to the folder (``/``-separated) or the index
    ids: list[str]


class SkippedFilesWarning(UserWarning):
    """Files in an image folder that were not loaded; the message lists them with reasons."""


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def load_digits_images(
    n_train: int | float | None = None,
    n_test: int | float | None = None,
    *,
    image_size: int | None = None,
    n_class: int = 10,
    random_state: int | None = 0,
) -> tuple[np.ndarray, ...]:
    """scikit-learn's 8x8 digits as grayscale images in [0, 1].

    Parameters
    ----------
    n_train, n_test : int, float or None
        Sizes of a stratified train/test split (counts, or fractions as in
        :func:`sklearn.model_selection.train_test_split`). Both ``None``: no split.
    image_size : int or None
        Resize to ``image_size`` x ``image_size`` with :func:`skft.data.adapters.adapt_images`
        (once, instead of at every fit). ``None`` keeps 8x8.
    n_class : int
        Load the digits ``0 .. n_class - 1`` only.
    random_state : int or None
        Seed of the split.

    Returns
    -------
    (X, y) or (X_train, X_test, y_train, y_test)
        ``X`` float32 ``(N, S, S)``, ``y`` int labels; with a split, in
        ``train_test_split``'s order.
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=n_class, return_X_y=True)
    X = (X.reshape(-1, 8, 8) / 16).astype(np.float32)
    if n_train is None and n_test is None:
        return _resized(X, image_size), y
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=n_train, test_size=n_test, stratify=y, random_state=random_state
    )
    return _resized(X_train, image_size), _resized(X_test, image_size), y_train, y_test


def _resized(X: np.ndarray, image_size: int | None) -> np.ndarray:
    if image_size is None:
        return X
    from .adapters import adapt_images

    return adapt_images(X, image_size)[:, 0].numpy()


# --------------------------------------------------------------------------
# image folders
# --------------------------------------------------------------------------


def load_image_folder(
    root: str | Path,
    image_size: int | None = None,
    *,
    labelled: bool = True,
    limit: int | None = None,
    return_paths: bool = False,
) -> ImageData:
    """Images from a folder, with one sub-folder per class when ``labelled``.

    Files are taken in sorted order, recursively; hidden files and folders
    (names starting with ``.``) are ignored. Files that are not images (by
    suffix, see :data:`IMAGE_SUFFIXES`), that PIL cannot read, or that lie
    outside a class sub-folder of a labelled folder are skipped, and one
    :class:`SkippedFilesWarning` lists them with the reason for each.

    Parameters
    ----------
    root : str or Path
        The folder, e.g. ``photos/`` holding ``photos/cats/1.jpg``, ``photos/dogs/7.png``.
    image_size : int or None
        Decode every image, resize its shorter side to ``image_size`` and crop
        the centre (:func:`skft.data.adapters.adapt_images`). Required unless ``return_paths``.
    labelled : bool
        ``True``: the label of ``root/<class>/.../file`` is ``<class>``.
        ``False``: every image file anywhere under ``root``; ``labels`` is ``None``.
    limit : int or None
        Keep at most ``limit`` files, evenly spaced within each class and shared
        out in proportion to class size, so every class keeps at least one
        (``limit`` below the number of classes is an error). Applied before
        decoding: unreadable files among them leave fewer.
    return_paths : bool
        Return file paths (str) instead of pixels, for estimators to read
        themselves; each file is still opened and checked (``PIL`` ``verify``),
        without decoding it.

    Returns
    -------
    ImageData
        ``(images, labels, ids)``: a uint8 array ``(N, S, S, C)`` (C is 1 when
        every image is grayscale, else 3) or a list of paths; the class names;
        the paths relative to ``root``.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    NotADirectoryError
        ``root`` is not a folder.
    ValueError
        No readable image (in a class sub-folder, when ``labelled``).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{str(root)!r} is not a folder")
    if image_size is None and not return_paths:
        raise ValueError("image_size is needed to decode images (or pass return_paths=True)")
    _check_limit(limit)
    files, skipped = _list_images(root, labelled)
    if labelled and not files:
        raise ValueError(f"{root}: no images in class sub-folders (one sub-folder per class)")
    groups = _group(files, root, labelled)
    if limit is not None:
        groups = _spread(groups, limit)
    files = [p for group in groups.values() for p in group]
    if return_paths:
        kept, bad = _check_files(files)
        images: Any = [str(p) for p in kept]
    else:
        images, kept, bad = _decode(files, image_size)
    skipped += bad
    if skipped:
        _warn_skipped(root, skipped)
    if not kept:
        raise ValueError(f"{root}: no readable images")
    labels = np.array([_class_of(p, root) for p in kept]) if labelled else None
    return ImageData(images, labels, [p.relative_to(root).as_posix() for p in kept])


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")


def _list_images(root: Path, labelled: bool) -> tuple[list[Path], list[str]]:
    images, skipped = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{path} (not an image file)")
        elif labelled and len(rel.parts) < 2:
            skipped.append(f"{path} (not in a class sub-folder)")
        else:
            images.append(path)
    return images, skipped


def _class_of(path: Path, root: Path) -> str:
    return path.relative_to(root).parts[0]


def _group(files: list[Path], root: Path, labelled: bool) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(_class_of(path, root) if labelled else "", []).append(path)
    return groups


def _spread(groups: dict[str, list[Path]], limit: int) -> dict[str, list[Path]]:
    """At most ``limit`` files, evenly spaced in each group, at least one per group."""
    sizes = {k: len(v) for k, v in groups.items()}
    total = sum(sizes.values())
    if limit >= total:
        return groups
    if limit < len(groups):
        raise ValueError(f"limit={limit} is below the number of classes ({len(groups)})")
    share = {k: limit * n / total for k, n in sizes.items()}
    quota = {k: min(sizes[k], max(1, int(share[k]))) for k in groups}
    while sum(quota.values()) < limit:  # largest shortfall first
        k = max((k for k in groups if quota[k] < sizes[k]), key=lambda k: share[k] - quota[k])
        quota[k] += 1
    while sum(quota.values()) > limit:  # only when the minimum of one pushed us over
        k = max((k for k in groups if quota[k] > 1), key=lambda k: quota[k] - share[k])
        quota[k] -= 1
    return {
        k: [v[i] for i in np.linspace(0, len(v) - 1, quota[k]).round().astype(int)]
        for k, v in groups.items()
    }


def _open_image(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return img.convert("RGB") if img.mode not in ("L", "RGB") else img.copy()


def _decode(files: list[Path], image_size: int) -> tuple[np.ndarray, list[Path], list[str]]:
    """Readable files as uint8 ``(N, S, S, C)``, in chunks; the unreadable ones listed."""
    import torch

    from .adapters import adapt_images

    chunks, kept, bad, pending = [], [], [], []
    for i, path in enumerate(files):
        try:
            pending.append(_open_image(path))
            kept.append(path)
        except Exception as exc:  # noqa: BLE001 - any file PIL cannot read is reported
            bad.append(f"{path} ({type(exc).__name__}: {exc})")
        if pending and (len(pending) == _DECODE_CHUNK or i == len(files) - 1):
            chunks.append(adapt_images(pending, image_size))
            pending = []
    if not chunks:
        return np.empty((0, image_size, image_size, 3), np.uint8), kept, bad
    channels = max(c.shape[1] for c in chunks)  # a grayscale chunk among RGB ones
    X = torch.cat([c.expand(-1, channels, -1, -1) for c in chunks])
    return X.permute(0, 2, 3, 1).contiguous().numpy(), kept, bad


def _check_files(files: list[Path]) -> tuple[list[Path], list[str]]:
    from PIL import Image

    kept, bad = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
            kept.append(path)
        except Exception as exc:  # noqa: BLE001 - any file PIL cannot read is reported
            bad.append(f"{path} ({type(exc).__name__}: {exc})")
    return kept, bad


def _warn_skipped(root: Path, skipped: list[str]) -> None:
    shown = skipped[:_LISTED]
    more = f"\n  ... and {len(skipped) - len(shown)} more" if len(skipped) > len(shown) else ""
    warn_at_caller(
        f"skipped {len(skipped)} file(s) under {root}:\n  " + "\n  ".join(shown) + more,
        SkippedFilesWarning,
    )


# --------------------------------------------------------------------------
# .npz files, and one entry for all
# --------------------------------------------------------------------------


def load_npz(path: str | Path, *, labelled: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` from an ``.npz`` file holding an array ``X`` (and ``y`` when ``labelled``).

    Loaded with ``allow_pickle=False``. Without ``labelled``, ``y`` is returned
    when present, else ``None``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        if "X" not in npz.files:
            raise ValueError(f"{path}: an .npz needs an array 'X' (and 'y'); found {npz.files}")
        X = npz["X"]
        y = npz["y"] if "y" in npz.files else None
    if labelled and y is None:
        raise ValueError(f"{path}: no array 'y' for training")
    return X, y


def load_data(
    source: str | Path,
    image_size: int | None = None,
    *,
    labelled: bool = True,
    limit: int | None = None,
    return_paths: bool = False,
) -> ImageData:
    """What ``skft tune --data`` and ``skft predict`` accept, by name or path.

    Parameters
    ----------
    source : str or Path
        ``"digits"`` (scikit-learn's, 8x8 floats in [0, 1]), an ``.npz`` file
        (see :func:`load_npz`) or a folder (see :func:`load_image_folder`).
    image_size : int or None
        Size image files are decoded to. Arrays (digits, ``.npz``) are returned
        as stored: the estimator resizes them.
    labelled : bool
        Labels are required (training); a folder then needs class sub-folders.
    limit : int or None
        At most this many samples: the first ``limit`` of an array, spread
        over the classes of a folder.
    return_paths : bool
        A folder's images as file paths (checked, not decoded), for an estimator to
        decode at the size its fit plan chose; arrays are returned as stored.

    Returns
    -------
    ImageData
        ``(images, labels, ids)``; ids of arrays are row indices as str.
    """
    _check_limit(limit)
    if isinstance(source, str) and source == "digits":
        X, y = load_digits_images()
        return _first(X, y, limit)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"{str(source)!r} does not exist (and is not 'digits', an .npz file or a folder)"
        )
    if path.is_dir():
        return load_image_folder(
            path, image_size, labelled=labelled, limit=limit, return_paths=return_paths
        )
    if path.suffix == ".npz":
        return _first(*load_npz(path, labelled=labelled), limit)
    raise ValueError(
        f"{str(source)!r} is not 'digits', an .npz file or a folder "
        "(skft tune and predict also read a .csv/.tsv of texts)"
    )


def _first(X: np.ndarray, y: np.ndarray | None, limit: int | None) -> ImageData:
    if limit is not None:
        X, y = X[:limit], None if y is None else y[:limit]
    return ImageData(X, y, [str(i) for i in range(len(X))])
