"""Hook specifications: the plugin author's contract."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .specs import BackboneSpec

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("skft")
hookimpl = pluggy.HookimplMarker("skft")

Register = Callable[..., None]


# --------------------------------------------------------------------------
# Registration hooks: each is handed a ``register`` callable
# --------------------------------------------------------------------------


@hookspec
def register_backbones(register: Register) -> None:
    """Register backbones.

    Parameters
    ----------
    register : callable
        ``register(spec, aliases=())`` with a :class:`skft.specs.BackboneSpec`.
    """


@hookspec
def register_freezers(register: Register) -> None:
    """Register freezing policies.

    Parameters
    ----------
    register : callable
        ``register(name, factory, aliases=())``; ``factory(**freeze__params)``
        returns a :class:`skft.specs.FreezePolicy`.
    """


@hookspec
def register_augmenters(register: Register) -> None:
    """Register augmenters.

    Parameters
    ----------
    register : callable
        ``register(name, factory, aliases=())``; ``factory(**augment__params)``
        returns a :class:`skft.specs.Augmenter`.
    """


# --------------------------------------------------------------------------
# Resolution hooks: exactly one plugin answers
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def resolve_backbone(name: str) -> BackboneSpec | None:
    """Build a spec for an open-ended name no plugin registered.

    Parameters
    ----------
    name : str
        The requested name, for example ``"timm:resnet10t"``.

    Returns
    -------
    BackboneSpec or None
        ``None`` when this plugin does not know the name.
    """
