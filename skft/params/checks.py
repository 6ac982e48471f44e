"""skft's own estimator parameters: their names, their checks, and the objects they name.

The parameters skft adds to skorch's are listed once, in
:data:`FINE_TUNE_PARAMS`; both estimators spell them out in their
``__init__`` signatures (scikit-learn reads parameters from there) and store
them with ``FineTuneMixin._init_params``. Scalar checks use scikit-learn's parameter
constraints; the messages name the parameter and the accepted values.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

from ..augment import augmentation_on, build_augmenter
from ..plugins import get_backbone, heads, input_kinds
from ..specs import BackboneSpec, InputKind
from ..training.freezing import build_freezer
from ..training.schedule import LR_SCHEDULES
from ..training.tta import n_tta_views
from .constraints import (
    Integral,
    Interval,
    InvalidParameterError,
    Options,
    Real,
    StrOptions,
    validate_parameter_constraints,
)
from .defaults import effective, effective_params_for

__all__ = [
    "FINE_TUNE_PARAMS",
    "Resolved",
    "check_params",
    "resolve_frozen_depth",
    "skorch_params",
]

#: The parameters skft adds to skorch's, in signature order.
FINE_TUNE_PARAMS = (
    "backbone",
    "pretrained",
    "frozen_depth",
    "freeze",
    "augment",
    "augment_strength",
    "image_size",
    "max_length",
    "lr_schedule",
    "random_state",
    "tta",
    "feature_cache",
    "head",
    "checkpoint",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "scoring",
    "streaming",
    "num_workers",
    "decode_cache",
    "precision",
)

#: ``name: (scikit-learn constraints, what the message says is accepted)``;
#: bools are refused unless a constraint is "boolean".
CONSTRAINTS: dict[str, tuple[list[Any], str]] = {
    "augment_strength": ([Interval(Real, 0, 1, closed="both")], "a float in [0, 1]"),
    "frozen_depth": (
        [None, Interval(Integral, 0, None, closed="left"), StrOptions({"all"})],
        "an int >= 0, 'all' or None (decided from the data, skft.params.plan)",
    ),
    "image_size": ([None, Interval(Integral, 8, None, closed="left")], "None or an int >= 8"),
    "max_length": (
        [None, Interval(Integral, 2, None, closed="left")],
        "an int >= 2 (tokens per text, special tokens included) or None (the backbone's default)",
    ),
    "max_epochs": (
        [None, Interval(Integral, 1, None, closed="left")],
        "an int >= 1 or None (the backbone's default)",
    ),
    "batch_size": (
        [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "an int >= 1 (or -1: all samples in one batch) or None (the backbone's default)",
    ),
    "lr": (
        [None, Interval(Real, 0, None, closed="neither"), StrOptions({"find"})],
        "a float > 0 or 'find' (the learning-rate range test, skft.lr_find) "
        "or None (the backbone's default)",
    ),
    "lr_schedule": (
        [None, StrOptions(set(LR_SCHEDULES))],
        "'constant', 'linear', 'cosine' or None (the backbone's default)",
    ),
    "pretrained": ([bool, str, os.PathLike], "True, False or a path to a state-dict file"),
    "feature_cache": (["boolean"], "True or False"),
    "decode_cache": (["boolean"], "True or False"),
    "early_stopping": (["boolean", StrOptions({"auto"})], "True, False or 'auto'"),
    "validation_fraction": ([Interval(Real, 0, 1, closed="neither")], "a float in (0, 1)"),
    "n_iter_no_change": ([Interval(Integral, 1, None, closed="left")], "an int >= 1"),
    "tol": ([Interval(Real, 0, None, closed="left")], "a float >= 0"),
    "scoring": ([None, str, callable], "None, a scorer name or a callable"),
    "checkpoint": ([None, str, os.PathLike], "None or a folder path"),
    "streaming": (["boolean", StrOptions({"auto"})], "True, False or 'auto'"),
    "num_workers": ([None, Interval(Integral, 0, None, closed="left")], "None or an int >= 0"),
    "precision": (
        [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "'auto', 'fp32', 'bf16' or 'fp16'",
    ),
    "compile": (["boolean"], "True or False"),
    "label_smoothing": ([Interval(Real, 0, 1, closed="left")], "a float in [0, 1)"),
    "class_weight": ([None, dict, StrOptions({"balanced"})], "None, 'balanced' or a dict"),
    "threshold": ([Interval(Real, 0, 1, closed="neither")], "a float in (0, 1)"),
}


def skorch_params(init_locals: dict[str, Any], own: tuple[str, ...]) -> dict[str, Any]:
    """An estimator ``__init__``'s ``locals()`` less its ``own`` parameters: skorch's arguments."""
    skip = {"self", "__class__", "kwargs", *own}
    return {**{k: v for k, v in init_locals.items() if k not in skip}, **init_locals["kwargs"]}


def _check_scalars(estimator: Any) -> None:
    for name, (constraints, accepted) in CONSTRAINTS.items():
        if not hasattr(estimator, name):
            continue  # the classifier's label_smoothing, class_weight and threshold
        value = getattr(estimator, name)
        try:
            if isinstance(value, bool) and "boolean" not in constraints and bool not in constraints:
                raise InvalidParameterError("bool")
            validate_parameter_constraints(
                {name: constraints}, {name: value}, caller_name=type(estimator).__name__
            )
        except InvalidParameterError:
            raise InvalidParameterError(f"{name} must be {accepted}, got {value!r}") from None


@dataclass
class Resolved:
    """The objects the names of an estimator's parameters stand for."""

    spec: BackboneSpec
    input_kind: InputKind
    freeze_policy: Any
    augmenter: Any
    #: ``(in_features, n_outputs) -> nn.Module``: the head, its ``head__*`` bound
    head: Any = None
    #: the rate ``lr="find"`` found, else ``None``
    lr: float | None = None

    def fitted_attributes(self) -> dict[str, Any]:
        """The estimator's fitted attributes these objects become."""
        return {
            "backbone_spec_": self.spec,
            "input_kind_": self.input_kind,
            "freeze_policy_": self.freeze_policy,
            "augmenter_": self.augmenter,
            "head_factory_": self.head,
            "lr_found_": self.lr,
        }


def check_params(estimator: Any) -> Resolved:
    """Check every skft parameter and look its names up, before any work.

    ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``) names a
    bad value; :class:`skft.UnknownNameError` an unknown name, with close matches.
    """
    _check_scalars(estimator)
    module_params = sorted(k for k in vars(estimator) if k.startswith("module__"))
    if module_params:
        raise ValueError(
            f"{module_params}: skft builds the module from backbone=; "
            "module__* parameters are not used"
        )
    spec = get_backbone(estimator.backbone)
    if estimator.pretrained is True and not spec.has_pretrained:
        raise ValueError(f"backbone {spec.name!r} has no pretrained weights; use pretrained=False")
    kind = input_kinds().get(spec.input_kind)
    freeze = effective(estimator, "freeze")  # None: "depth", or the fit plan's policy
    policy = build_freezer(freeze, effective_params_for(estimator, "freeze"))
    augment = effective(estimator, "augment")  # None: the backbone's default augmenter
    augmenter = build_augmenter(augment, effective_params_for(estimator, "augment"))
    if n_tta_views(estimator.tta) > 1 and kind.name != "image":
        raise ValueError(
            f"tta={estimator.tta!r} needs image input; {spec.name!r} takes {kind.name}"
        )
    kinds = augmenter.input_kinds
    if augmentation_on(augment, estimator.augment_strength) and kind.name not in kinds:
        raise ValueError(
            f"augment={augment!r} works on {'/'.join(kinds)} input but "
            f"backbone {spec.name!r} takes {kind.name} input; "
            "use augment='none' or augment_strength=0"
        )
    return Resolved(spec, kind, policy, augmenter, _head(estimator, spec))


def _head(estimator: Any, spec: BackboneSpec) -> Any:
    """The head factory ``head=`` names, with the ``head__*`` parameters bound (checked now)."""
    from functools import partial

    params = estimator.get_params_for("head")
    if estimator.head == "linear" and spec.make_head is not None and not params:
        return spec.make_head  # the backbone's own default head
    factory = heads().get(estimator.head)
    try:
        inspect.signature(factory).bind(1, 1, **params)  # (in_features, n_outputs, **head__*)
    except TypeError as exc:
        given = ", ".join("head__" + k for k in params)
        raise TypeError(f"head={estimator.head!r} does not accept {given}: {exc}") from None
    return partial(factory, **params)


def resolve_frozen_depth(frozen_depth: Any, group_names: list[str], backbone: str) -> int:
    """``frozen_depth`` as a number of groups, checked against the built backbone's groups."""
    n = len(group_names)
    if frozen_depth == "all":
        return n
    if frozen_depth > n:
        raise ValueError(
            f"frozen_depth={frozen_depth} but backbone {backbone!r} has "
            f"{n} layer groups ({', '.join(group_names)}); use 0..{n} or 'all'"
        )
    return int(frozen_depth)
