"""Augmenter names to objects: one registered name, a composition, or a wrapped callable.

``augment=`` takes one registered name, a ``"+"``-joined string of names
(``"basic+mixup"``) or a list of names (``["basic", "mixup"]``); a
composition applies its augmenters in order, all at the same strength.

``augment__*`` parameters of a composition are routed by name:
``augment__mixup__alpha=0.4`` goes to the ``mixup`` component only; a plain
``augment__alpha=0.4`` goes to every component whose factory accepts an
``alpha`` argument, and it is an error when none does.

Whatever a factory returns, :func:`build_augmenter` hands back an object with
the declared attributes of :class:`skft.specs.Augmenter` (``input_kinds``,
``mixes_targets``): :func:`as_augmenter` wraps callables that do not subclass it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from .plugins import augmenters, instantiate
from .specs import Augmenter

__all__ = [
    "AugmenterAdapter",
    "Compose",
    "as_augmenter",
    "augment_batch",
    "build_augmenter",
    "parse_augment",
]

# --------------------------------------------------------------------------
# the declared contract, for any callable
# --------------------------------------------------------------------------


class AugmenterAdapter(Augmenter):
    """An :class:`~skft.specs.Augmenter` around a callable that does not subclass it.

    ``input_kinds`` and ``mixes_targets`` are read from the callable once
    (the base's defaults where it has none); ``y=`` is passed on only when given.
    """

    def __init__(self, wrapped: Any) -> None:
        if not callable(wrapped):
            raise TypeError(f"an augmenter must be callable, got {type(wrapped).__name__}")
        self.wrapped = wrapped
        self.input_kinds = tuple(getattr(wrapped, "input_kinds", Augmenter.input_kinds))
        self.mixes_targets = bool(getattr(wrapped, "mixes_targets", Augmenter.mixes_targets))

    def __call__(self, X, strength, generator, y=None):
        if y is None:
            return self.wrapped(X, strength, generator)
        return self.wrapped(X, strength, generator, y=y)

    def __repr__(self) -> str:
        return repr(self.wrapped)


def as_augmenter(obj: Any) -> Augmenter:
    """``obj`` when it subclasses :class:`~skft.specs.Augmenter`, else wrapped in an adapter."""
    return obj if isinstance(obj, Augmenter) else AugmenterAdapter(obj)


# --------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------


class Compose(Augmenter):
    """Apply augmenters in order, all at the same strength.

    ``mixes_targets`` is true when any component mixes targets; then calling
    with ``y=`` returns ``(X, y)`` and components that mix get ``y``, the
    others only ``X``. ``input_kinds`` are the kinds every component takes.
    """

    def __init__(self, augmenters: Sequence[Any], names: Sequence[str] = ()) -> None:
        self.augmenters = [as_augmenter(a) for a in augmenters]
        self.names = list(names) or [type(a).__name__ for a in self.augmenters]
        self.mixes_targets = any(a.mixes_targets for a in self.augmenters)
        kinds = [a.input_kinds for a in self.augmenters]
        self.input_kinds = tuple(k for k in kinds[0] if all(k in ks for ks in kinds[1:]))

    def __call__(self, X, strength, generator, y=None):
        for aug in self.augmenters:
            if y is not None and aug.mixes_targets:
                X, y = aug(X, strength, generator, y=y)
            else:
                X = aug(X, strength, generator)
        return X if y is None else (X, y)

    def __repr__(self) -> str:
        return f"Compose({self.augmenters!r})"


def parse_augment(augment: Any) -> list[str]:
    """``augment=`` as a list of names: one name, ``"a+b"``, or a list/tuple of names."""
    if isinstance(augment, str):
        if "+" in augment and augment not in augmenters():
            names = [part.strip() for part in augment.split("+")]
        else:
            return [augment]
    elif isinstance(augment, (list, tuple)):
        names = list(augment)
    else:
        raise TypeError(
            "augment must be a name, a '+'-joined string of names or a list of names, "
            f"got {type(augment).__name__}"
        )
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"augment={augment!r}: a composition needs one or more non-empty names")
    return names


def augmentation_on(augment: Any, strength: Any = 1.0) -> bool:
    """Whether training batches are augmented: a strength above 0 and not only ``"none"``.

    The one answer to "is augmentation on?": the parameter checks, the frozen-prefix
    cache (augmented inputs differ between epochs), ``augment_batch`` and the default
    search space (``strength`` left at 1: is the strength worth searching?) all ask it.
    ``augment`` is the effective value (None already replaced by the backbone's default).
    """
    return float(strength) > 0 and set(parse_augment(augment)) != {"none"}


def _accepts(factory: Any, param: str) -> bool:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return True
    kinds = {p.kind for p in sig.parameters.values()}
    return param in sig.parameters or inspect.Parameter.VAR_KEYWORD in kinds


def build_augmenter(augment: Any, params: dict[str, Any]) -> Augmenter:
    """The augmenter for ``augment=`` (a name, ``"a+b"`` or a list) and its ``augment__*`` params.

    Always an :class:`~skft.specs.Augmenter` (see :func:`as_augmenter`), so
    callers read ``input_kinds`` and ``mixes_targets`` directly. Unknown names
    raise :class:`skft.UnknownNameError` listing close matches.
    """
    names = parse_augment(augment)
    registry = augmenters()
    factories = [registry.get(name) for name in names]
    if len(names) == 1 and isinstance(augment, str):
        return as_augmenter(instantiate(factories[0], params, f"augment={augment!r}", "augment__"))
    routed: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in params.items():
        head, sep, rest = key.partition("__")
        if sep and head in routed:
            routed[head][rest] = value
            continue
        takers = [name for name, f in zip(names, factories) if _accepts(f, key)]
        if not takers:
            raise TypeError(
                f"augment__{key}: no augmenter in {names} accepts {key!r}; "
                f"address one component as augment__<name>__{key}"
            )
        for name in takers:
            routed[name][key] = value
    parts = [
        instantiate(f, routed[name], f"augment={name!r} (in {augment!r})", f"augment__{name}__")
        for name, f in zip(names, factories)
    ]
    return Compose(parts, names)


def augment_batch(net: Any, batch: tuple[Any, Any]) -> tuple[Any, Any]:
    """``net``'s augmenter applied to a training batch ``(X, y)`` on ``net.device``.

    Only when the fit's setup says so (``net.setup_.augmenting``: an augmenter for this
    input kind, ``augment_strength > 0``), and not on cached prefix features
    (``net.input_depth_``); other batches pass as they are.
    """
    from .training.speed import to_device

    Xi, yi = batch
    setup = net.setup_  # decided at the fit's start (skft.params.setup)
    if setup.augmenting and not net.input_depth_:
        strength, aug, kind = setup.augment_strength, setup.augmenter, setup.input_kind
        Xi = to_device(Xi, setup.device)
        if kind.to_augmentable is not None:
            Xi = kind.to_augmentable(Xi)
        if aug.mixes_targets:
            Xi, yi = aug(Xi, strength, net.aug_generator_, y=net._mixable_targets(yi))
        else:
            Xi = aug(Xi, strength, net.aug_generator_)
    return Xi, yi
