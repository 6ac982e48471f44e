"""Warnings that point at the user's line, not at the skft code deep inside a fit.

A warning raised while ``clf.fit(X, y)`` runs passes through skft, skorch, torch and back
into skft (or a plugin): a fixed ``stacklevel`` points somewhere in between, and which
frame depends on the path taken. :func:`warn_at_caller` walks out of those packages
instead and reports the first frame outside them.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from types import FrameType

__all__ = ["LIBRARY_PACKAGES", "user_frame", "warn_at_caller"]

#: Top-level packages a warning walks out of, besides skft, any ``skft_*`` plugin and the
#: package of the code that warns: the libraries skft calls and that call back into it.
LIBRARY_PACKAGES = frozenset(
    {
        "skft",
        "skorch",
        "sklearn",
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "pandas",
        "pluggy",
        "joblib",
        "optuna",
        "optuna_integration",
        "accelerate",
        "timm",
        "tokenizers",
        "transformers",
        "onnx",
        "onnxruntime",
        "torch_pruning",
    }
)


def _package(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", "")).split(".")[0]


def _is_library(package: str, skip: frozenset[str]) -> bool:
    return package in skip or package.startswith("skft_")


def user_frame(start: FrameType, skip: Iterable[str] = ()) -> FrameType:
    """The first frame from ``start`` outwards that is not in skft, a ``skft_*`` plugin,
    :data:`LIBRARY_PACKAGES`, ``skip`` or ``start``'s own package; ``start`` when every
    frame is (a script run as ``python -m skft...``)."""
    skipped = LIBRARY_PACKAGES | {_package(start)} | set(skip)
    frame: FrameType | None = start
    while frame is not None:
        if not _is_library(_package(frame), skipped):
            return frame
        frame = frame.f_back
    return start


def warn_at_caller(
    message: str | Warning, category: type[Warning] = UserWarning, skip: Iterable[str] = ()
) -> None:
    """:func:`warnings.warn`, reported at the user's line: the first frame outside skft.

    Frames in skft, in any ``skft_*`` package, in the package of the code that calls
    this (a third-party plugin's own), in the libraries skft calls (torch, skorch,
    scikit-learn, ...: ``skft.warn.LIBRARY_PACKAGES``) and in ``skip`` (more top-level
    package names) are walked out of, so the warning names
    the line of the user's ``fit``, ``predict`` or ``cross_val_score`` call however deep
    it was raised. Filters, ``pytest.warns`` and ``-W error`` see it as any warning.
    """
    frame = user_frame(sys._getframe(1), skip)
    module_globals = frame.f_globals
    registry = module_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module_globals.get("__name__", "<string>"),
        registry,
        module_globals,
    )
