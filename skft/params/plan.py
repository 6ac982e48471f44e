"""The fit plan: what a fit's data says about the parameters left to skft.

Parameters in :data:`PLANNED` default to ``None``: "let skft decide". ``fit`` looks
at the training data once (:class:`DataProfile`: samples, classes, samples per
class, image channels and size) and resolves each ``None`` in one place,
:func:`plan_fit`:

1. the core defaults (:data:`CORE_DEFAULTS`),
2. updated by the backbone spec's static ``defaults`` (a text encoder declares
   ``lr=5e-5``, ``batch_size=16``, ...),
3. updated by the rule for the data: the spec's own ``plan`` callable where it
   declares one, else the rule of its input kind (:func:`image_rule` for images).

A value the user sets always wins. The parameters themselves keep ``None``
(``get_params``, ``clone`` and pickles do not depend on the data); the fitted
estimator's ``fit_plan_`` holds the decisions and the reason for each, and
``resolved_params_`` the values the fit used. The image rule, as a table
(``n``: training samples, ``n/c``: the smallest class's count; for multi-label ``y``,
each label is a two-class problem and ``n/c`` is the rarer side, positives or
negatives, of the rarest label):

=============================  =======================================================
data                           decision
=============================  =======================================================
small images (side <= 32) or   far from ImageNet's photos: full fine-tuning
grayscale                      (``frozen_depth=0``) at ``image_size=64``, AdamW 3e-3,
                               cosine schedule, epochs for :data:`FINE_TUNE_STEPS` steps,
                               ``augment="affine"`` (no mirror)
colour photos, n/c < 300       linear probe: ``frozen_depth="all"``, lr 1e-2 (the head
                               alone), no augmentation (the frozen features are cached),
                               :data:`PROBE_EPOCHS` epochs; input size 1.3x the backbone's
                               (:func:`probe_image_size`: FixRes), within the sources'
                               shorter side
colour photos, n/c >= 300      full fine-tuning, lr 1e-3, ``basic`` augmentation, epochs
                               for :data:`FINE_TUNE_STEPS` steps
=============================  =======================================================

A ``frozen_depth`` the user sets picks the regime instead of the data: ``"all"`` gets the
probe's rate, epochs and augmentation, any other depth those of fine-tuning (the far row's
for small or grayscale images); the input sizes still follow the sources.

Batch size: 32, or a quarter of the data for fewer than 128 samples (at least 8),
so that a small data set still makes several steps per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CORE_DEFAULTS",
    "PLANNED",
    "DataProfile",
    "FitPlan",
    "adds_adapters",
    "image_rule",
    "plan_fit",
    "probe_image_size",
    "static_defaults",
]

#: What ``None`` means when neither the backbone nor the data says more.
CORE_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "batch_size": 32,
    "max_epochs": 10,
    "augment": "basic",
    "max_length": 128,
    "head_lr_factor": 1.0,
    "lr_schedule": "constant",
    "frozen_depth": 0,
    "freeze": "depth",
    "image_size": None,  # the backbone's default_image_size
}

#: Estimator parameters whose ``None`` the plan resolves (``head_lr_factor`` is the
#: spec's, not a parameter).
PLANNED = (
    "lr",
    "batch_size",
    "max_epochs",
    "augment",
    "max_length",
    "lr_schedule",
    "frozen_depth",
    "freeze",
    "image_size",
)

#: Source images this small (shorter side, pixels) are far from ImageNet's photos.
SMALL_SIDE = 32
#: Input size for small sources (upsampled: big enough for the stem's strides).
SMALL_IMAGE_SIZE = 64
#: Samples per class (smallest class) below which colour photos get a linear probe
#: (ants/bees, 121 per class: probe 0.935 against 0.863-0.922 fine-tuned; where fine-tuning
#: overtakes the probe on photos was not measured here: 300 is a cautious guess).
PROBE_BELOW_PER_CLASS = 300
#: Learning rate of full fine-tuning on small or grayscale images (measured on digits:
#: 50 images, 300 steps, 64 px: 0.874 at 3e-3 against 0.754 at 1e-3).
FAR_LR = 3e-3
#: Optimizer steps a fine-tuning fit aims at (epochs follow from the data size).
FINE_TUNE_STEPS = 300
#: Epochs of a linear probe (cheap: the frozen features are computed once).
PROBE_EPOCHS = 20
#: A frozen network's input size over its training size, for a linear probe: networks
#: trained with random-resized crops see objects larger than a centre crop of the same
#: size shows them, so their frozen features are better at a larger test size (FixRes,
#: Touvron et al. 2019: about 1.3x for ResNet-50 at 224). Measured here with Lite0
#: (224 -> 288): ants/bees 0.967 against 0.941, at 1.5x the fit time.
PROBE_SIZE_FACTOR = 1.3
#: Epoch bounds for step-budgeted fits.
MIN_EPOCHS, MAX_EPOCHS = 5, 100


@dataclass(frozen=True)
class DataProfile:
    """What the training data says, read once before a fit (no pixels decoded)."""

    input_kind: str
    n_samples: int
    #: distinct labels (classifiers; multi-label: label columns), else None
    n_classes: int | None = None
    #: the smallest class's count (classifiers; multi-label: over every label column,
    #: the rarer of its positives and negatives), else None
    min_class_count: int | None = None
    #: images: 1 (grayscale) or 3/4 (colour); None when unknown
    channels: int | None = None
    #: images: the shorter side of the images as given (median over a sample of
    #: files); None when unknown
    source_side: int | None = None
    #: y is a multi-label indicator matrix (one column per label)
    multilabel: bool = False

    @property
    def per_class(self) -> float:
        """Samples per class: the smallest class's count (regression: all samples)."""
        return float(self.min_class_count if self.min_class_count else self.n_samples)

    @classmethod
    def of(cls, X: Any, y: Any, input_kind: str, classifier: bool) -> DataProfile:
        """The profile of training data ``X``, ``y`` for a backbone taking ``input_kind``."""
        n = _n_samples(X)
        n_classes = min_count = None
        multilabel = False
        if classifier and y is not None:
            n_classes, min_count, multilabel = _class_counts(y)
        channels = side = None
        if input_kind == "image":
            channels, side = _image_shape(X)
        return cls(input_kind, n, n_classes, min_count, channels, side, multilabel)


@dataclass(frozen=True)
class FitPlan:
    """The values a fit uses for the parameters left to skft, and why."""

    profile: DataProfile
    #: every name in :data:`PLANNED` (plus ``head_lr_factor``) to the value used, and
    #: the sub-parameters a rule chose with a policy it chose (``freeze__pair_iterations``)
    values: Mapping[str, Any]
    #: name to where its value came from: "set by the user", "backbone default", a rule
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        width = max(len(k) for k in self.values)
        lines = [f"fit plan for {self.profile}"]
        lines += [
            f"  {k:<{width}} = {v!r:<14} {self.reasons.get(k, '')}" for k, v in self.values.items()
        ]
        return "\n".join(lines)


def static_defaults(spec: Any) -> dict[str, Any]:
    """The core defaults updated by the spec's declared ``defaults`` (no data)."""
    unknown = set(spec.defaults) - set(CORE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"backbone {spec.name!r} declares unknown training defaults {sorted(unknown)}; "
            f"known: {sorted(CORE_DEFAULTS)}"
        )
    return {**CORE_DEFAULTS, **spec.defaults}


Rule = Callable[[DataProfile, dict], dict]


def plan_fit(spec: Any, profile: DataProfile, params: Mapping[str, Any]) -> FitPlan:
    """Resolve the ``None`` among ``params`` (the estimator's) for ``spec`` and the data.

    The rule is the spec's ``plan`` when it declares one, else the input kind's
    (:data:`RULES`); it gets the profile and the static defaults and returns the
    values it changes, each as ``(value, reason)``. In the defaults it gets, ``freeze``
    and ``frozen_depth`` are what the user (or the backbone's defaults) chose, or ``None``
    when nobody did: a rule picks a policy or a depth, and the parameters that go with
    it, only then; a depth the user chose picks the regime whose companions (rate,
    epochs, augmentation) the rule sets. A rule
    may decide a chosen policy's parameters too (``freeze__pair_iterations``); they are
    dropped when the user names a policy.
    """
    values = static_defaults(spec)
    reasons = {k: ("backbone default" if k in spec.defaults else "core default") for k in values}
    rule = spec.plan if getattr(spec, "plan", None) is not None else RULES.get(spec.input_kind)
    if params.get("pretrained") is False:
        rule = None  # random weights: nothing to keep frozen; the static defaults stand
    if rule is not None:
        seen = dict(values)  # what the rule sees: the static defaults, and the policy chosen
        for chosen in ("freeze", "frozen_depth"):
            if params.get(chosen) is not None:
                seen[chosen] = params[chosen]
            elif chosen not in spec.defaults:
                seen[chosen] = None  # nobody chose: the rule may (else the core default)
        if seen.get("image_size") is None and spec.input_kind == "image":
            seen["image_size"] = spec.default_image_size  # what the rule's sizes start from
        for name, (value, why) in rule(profile, seen).items():
            values[name], reasons[name] = value, why
    if params.get("frozen_depth") is None and adds_adapters(params.get("freeze")):
        values["frozen_depth"] = 0  # a probe would leave the adapters nothing to adapt
        reasons["frozen_depth"] = f"freeze={params['freeze']!r}: adapters in every layer group"
    for name in PLANNED:
        if params.get(name) is not None:
            values[name], reasons[name] = params[name], "set by the user"
    for name in [k for k in values if "__" in k]:  # a rule's freeze__*, augment__*, ...
        prefix = name.split("__", 1)[0]
        if params.get(prefix) is not None:  # the user chose the policy: its own defaults
            del values[name], reasons[name]
        elif params.get(name) is not None:
            values[name], reasons[name] = params[name], "set by the user"
    if values.get("image_size") is None and spec.input_kind == "image":
        values["image_size"] = spec.default_image_size
        reasons["image_size"] = "backbone default"
    return FitPlan(profile, values, reasons)


def adds_adapters(freeze: Any) -> bool:
    """Whether the freezing policy named ``freeze`` adds adapters (:class:`AdaptsModule`)."""
    if not isinstance(freeze, str):
        return False
    from ..plugins import UnknownNameError, freezers
    from ..specs import AdaptsModule

    try:
        factory = freezers().get(freeze)
    except UnknownNameError:
        return False  # check_params names it
    return isinstance(factory, type) and issubclass(factory, AdaptsModule)


def _epochs_for_steps(n: int, batch_size: int, steps: int) -> int:
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(steps / steps_per_epoch))))


def _batch_size(n: int, base: int) -> int:
    """``base``, or a quarter of the data (at least 8) when that is smaller."""
    return int(min(base, max(8, n // 4)))


def probe_image_size(base: int | None, side: int | None) -> int | None:
    """The input size of a linear probe: :data:`PROBE_SIZE_FACTOR` times the backbone's
    ``base`` size (a multiple of 32), no larger than the sources' shorter ``side`` (never
    upsampled for it), no smaller than ``base``; ``None`` when either is unknown."""
    if base is None or side is None:
        return None
    target = int(round(base * PROBE_SIZE_FACTOR / 32)) * 32
    return int(max(base, min(target, side // 32 * 32)))


def image_rule(profile: DataProfile, defaults: dict) -> dict[str, tuple[Any, str]]:
    """The image rule (module docstring's table): freezing, rate, epochs, size, augmentation."""
    n, per_class = profile.n_samples, profile.per_class
    side = profile.source_side
    small = side is not None and side <= SMALL_SIDE
    gray = profile.channels == 1
    bs = _batch_size(n, defaults["batch_size"])
    out: dict[str, tuple[Any, str]] = {}
    if bs != defaults["batch_size"]:
        out["batch_size"] = (bs, f"a quarter of {n} samples")
    chosen = defaults.get("frozen_depth")  # the user's depth, or None: the data decides
    if chosen is not None:
        probe = chosen == "all"  # the user's depth picks the regime; partial = fine-tuning
        why = f"frozen_depth={chosen!r} set by the user"
    elif small or gray:
        probe = False
        why = f"{'small' if small else 'grayscale'} images, far from ImageNet's photos"
    else:
        probe = per_class < PROBE_BELOW_PER_CLASS
        why = f"{per_class:g} per class {'<' if probe else '>='} {PROBE_BELOW_PER_CLASS}"
    if small:
        out["image_size"] = (SMALL_IMAGE_SIZE, f"{side}-px sources upsampled to {SMALL_IMAGE_SIZE}")
    if probe:
        out["frozen_depth"] = ("all", f"{why}: linear probe on frozen features")
        out["lr"] = (1e-2, "the head alone trains")
        out["augment"] = ("none", "probe on cached features")
        out["max_epochs"] = (PROBE_EPOCHS, "probe epochs are cheap (cached features)")
        out["lr_schedule"] = ("cosine", "decay to 0 over the probe")
        size = None if small else probe_image_size(defaults.get("image_size"), side)
        if size is not None and size != defaults.get("image_size"):
            out["image_size"] = (
                size,
                f"frozen features at {PROBE_SIZE_FACTOR}x the backbone's "
                f"{defaults['image_size']} px (FixRes), within the {side}-px sources",
            )
        return out
    out["frozen_depth"] = (0, f"{why}: full fine-tuning")
    epochs = _epochs_for_steps(n, bs, FINE_TUNE_STEPS)
    out["max_epochs"] = (epochs, f"{FINE_TUNE_STEPS} steps of {bs} over {n} samples")
    if small or gray:
        out["lr"] = (FAR_LR, "the whole network moves far from its pretraining")
        out["augment"] = ("affine", "crops, rotations and shifts; no mirror (digits, letters)")
        out["lr_schedule"] = ("cosine", "fine-tuning: warm-up and cosine decay")
    return out


#: The rule of each input kind, for specs that declare no ``plan`` of their own.
RULES: dict[str, Rule] = {"image": image_rule}


# --------------------------------------------------------------------------
# Reading the data's shape without decoding it
# --------------------------------------------------------------------------


def _n_samples(X: Any) -> int:
    try:
        return len(X)
    except TypeError:
        return int(getattr(X, "shape", [0])[0])


def _class_counts(y: Any) -> tuple[int | None, int | None, bool]:
    """(classes, the smallest class's count, multi-label); ``None`` counts where unknown.

    A 2-D ``y`` of several columns is a multi-label indicator matrix: each column is
    a two-class problem, and the smallest count is the rarer side of the rarest label.
    """
    try:
        if hasattr(y, "toarray"):  # a sparse indicator matrix
            y = y.toarray()
        values = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
        if values.ndim == 2 and values.shape[1] > 1:
            positives = values.astype(np.float64).sum(axis=0)
            rarer = np.minimum(positives, len(values) - positives)
            return values.shape[1], int(rarer.min()), True
        if values.ndim != 1:
            return None, None, False
        _, counts = np.unique(
            values.astype(str) if values.dtype == object else values, return_counts=True
        )
    except (TypeError, ValueError):
        return None, None, False  # bad labels: the label checks will say so
    return len(counts), int(counts.min()) if len(counts) else None, False


def _image_shape(X: Any) -> tuple[int | None, int | None]:
    """(channels, shorter side) of the images as given; ``None`` where unknown."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) in (3, 4):
        if len(shape) == 3:
            return 1, int(min(shape[1:]))
        if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
            return int(shape[1]), int(min(shape[2:]))
        return int(shape[3]), int(min(shape[1:3]))
    if isinstance(X, (list, tuple)) and X:
        return _sample_files(X[: min(len(X), 16)])
    return None, None


def _sample_files(items: list) -> tuple[int | None, int | None]:
    """Channels and median shorter side of a few images (headers only for files)."""
    import os

    from PIL import Image

    sides, channels = [], []
    for item in items:
        try:
            if isinstance(item, (str, os.PathLike)):
                with Image.open(item) as im:
                    size, mode = im.size, im.mode
            elif isinstance(item, Image.Image):
                size, mode = item.size, item.mode
            else:
                a = np.asarray(item)
                if a.ndim not in (2, 3):
                    continue
                size = a.shape[:2] if a.ndim == 2 or a.shape[-1] in (1, 3, 4) else a.shape[1:]
                mode = "L" if a.ndim == 2 else "RGB"
        except (OSError, ValueError, TypeError):
            continue  # the loader names bad files
        sides.append(min(size))
        channels.append(1 if mode in ("L", "1", "I", "I;16", "F", "LA") else 3)
    if not sides:
        return None, None
    return max(set(channels), key=channels.count), int(np.median(sides))
