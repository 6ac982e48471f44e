"""The plugin manager and the registries it fills."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from .specs import BackboneSpec, InputKind
from .warn import warn_at_caller

__all__ = [
    "DEFAULT_PLUGINS",
    "BackbonePrefix",
    "Registry",
    "UnknownNameError",
    "PluginLoadWarning",
    "augmenters",
    "backbone_prefixes",
    "backbones",
    "before_epochs",
    "broken_plugins",
    "demos",
    "freezers",
    "get_backbone",
    "heads",
    "input_kinds",
    "instantiate",
    "load_plugins",
    "pm",
]

DEFAULT_PLUGINS = (
    "skft.builtin.input_kinds",
    "skft.builtin.heads",
    "skft.builtin.torchvision_backbones",
    "skft.builtin.small_backbones",
    "skft.builtin.freezers",
    "skft.builtin.adapters",
    "skft.builtin.augmenters",
    "skft.builtin.randaugment",
    "skft.builtin.search_space",
)

pm = pluggy.PluginManager("skft")
pm.add_hookspecs(hookspecs)
_loaded = False
_entry_points: dict[str, str] = {}  # plugin name -> entry point ("module:object")
_broken: dict[str, str] = {}  # plugin name -> why it is not (fully) loaded


class PluginLoadWarning(UserWarning):
    """An installed plugin failed to load or raised in a hook; the others still work."""


def broken_plugins() -> dict[str, str]:
    """Installed plugins that failed (name -> entry point and error), after :func:`load_plugins`."""
    load_plugins()
    return dict(_broken)


def _mark_broken(name: str, entry_point: str, where: str, exc: BaseException) -> None:
    reason = f"entry point {entry_point!r}: {where} raised {type(exc).__name__}: {exc}"
    if name not in _broken:
        _broken[name] = reason
        warn_at_caller(
            f"skft plugin {name!r} is broken ({reason}); the other plugins are loaded",
            PluginLoadWarning,
        )


def load_plugins() -> None:
    """Register the default plugins and installed entry points, once.

    ``SKFT_LOAD_PLUGINS`` set to a comma-separated list of entry-point names
    loads only those ("" loads none).
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    allow = os.environ.get("SKFT_LOAD_PLUGINS")
    allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
    for ep in entry_points(group="skft"):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is None and not pm.is_blocked(ep.name):
            try:
                pm.register(ep.load(), ep.name)
            except Exception as exc:  # a broken plugin must not take skft down with it
                _mark_broken(ep.name, ep.value, "loading it", exc)
                continue
            _entry_points[ep.name] = ep.value


def _call_each(hook: Any, firstresult: bool = False, answers: tuple = (), **kwargs: Any) -> Any:
    """Call ``hook``'s implementations in pluggy's order; an entry-point plugin that raises
    is reported (:class:`PluginLoadWarning`) and skipped, others raise as usual. Exceptions
    of the types in ``answers`` are the hook's answer (a resolver's "unknown name"): raised."""
    for impl in reversed(hook.get_hookimpls()):
        try:
            result = impl.function(**kwargs)
        except Exception as exc:
            if impl.plugin_name not in _entry_points or isinstance(exc, answers):
                raise
            _mark_broken(impl.plugin_name, _entry_points[impl.plugin_name], hook.name, exc)
            continue
        if firstresult and result is not None:
            return result
    return None


class UnknownNameError(ValueError, KeyError):
    """A name no plugin registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


T = TypeVar("T")


class Registry(Generic[T]):
    """Names to things, filled by one registration hook."""

    def __init__(self, kind: str, param: str) -> None:
        self.kind, self.param = kind, param
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise TypeError(f"{self.param} must be a name (str), got {type(name).__name__}")
        name = self._aliases.get(name, name)
        if name in self._items:
            return self._items[name]
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        known = sorted({*self._items, *self._aliases})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        broken = "; ".join(f"{n!r} ({why})" for n, why in _broken.items())
        return (
            f"Unknown {self.kind} {name!r} ({self.param}={name!r}).{hint} "
            f"Registered: {', '.join(known) or '(none)'}."
            + (f" Broken plugins, which may have provided it: {broken}." if broken else "")
        )


def _collect(hook: Callable[..., Any], registry: Registry, spec_type: type | None) -> Registry:
    def register(*args: Any, aliases: tuple[str, ...] = ()) -> None:
        if spec_type is not None:
            (spec,) = args
            if not isinstance(spec, spec_type):
                raise TypeError(f"{hook.name} expects a {spec_type.__name__}, got {spec!r}")
            registry.add(spec.name, spec, tuple(aliases))
        else:
            name, factory = args
            if not callable(factory):
                raise TypeError(f"{registry.kind} {name!r}: factory must be callable")
            registry.add(name, factory, tuple(aliases))

    load_plugins()
    _call_each(hook, register=register)
    return registry


def input_kinds() -> Registry[InputKind]:
    """Every registered input kind (``"image"``, ``"tabular"``, plugins' own)."""
    registry = Registry("input kind", "input_kind")
    return _collect(pm.hook.register_input_kinds, registry, InputKind)


def backbones() -> Registry[BackboneSpec]:
    """Every registered backbone spec (rebuilt on each call: plugins may change)."""
    return _collect(pm.hook.register_backbones, Registry("backbone", "backbone"), BackboneSpec)


def freezers() -> Registry[Callable[..., Any]]:
    """Every registered freezing-policy factory."""
    return _collect(pm.hook.register_freezers, Registry("freezing policy", "freeze"), None)


def heads() -> Registry[Callable[..., Any]]:
    """Every registered head factory."""
    return _collect(pm.hook.register_heads, Registry("head", "head"), None)


def demos() -> Registry[Callable[..., Any]]:
    """Every registered demo (``skft demo --kind NAME``)."""
    return _collect(pm.hook.register_demos, Registry("demo", "--kind"), None)


def augmenters() -> Registry[Callable[..., Any]]:
    """Every registered augmenter factory."""
    return _collect(pm.hook.register_augmenters, Registry("augmenter", "augment"), None)


@dataclass(frozen=True)
class BackbonePrefix:
    """An open-ended family of backbone names: ``prefix`` + anything ``resolve`` builds."""

    prefix: str
    resolve: Callable[[str], BackboneSpec]
    description: str = ""


def backbone_prefixes() -> dict[str, BackbonePrefix]:
    """Every registered prefix of open-ended backbone names (``"timm:"``, ``"hf:"``, ...)."""
    found: dict[str, BackbonePrefix] = {}

    def register(prefix: str, resolve: Callable[[str], BackboneSpec], description: str = ""):
        if not isinstance(prefix, str) or not prefix:
            raise TypeError(f"a backbone prefix must be a non-empty str, got {prefix!r}")
        if not callable(resolve):
            raise TypeError(f"backbone prefix {prefix!r}: resolve must be callable")
        if prefix in found:
            raise ValueError(f"backbone prefix {prefix!r} is registered twice")
        found[prefix] = BackbonePrefix(prefix, resolve, description)

    load_plugins()
    _call_each(pm.hook.register_backbone_prefixes, register=register)
    return found


def before_epochs(estimator: Any, X: Any, y: Any) -> None:
    """Call every plugin's ``before_epochs`` hook on a freshly built ``estimator`` (see
    :func:`skft.hookspecs.before_epochs`); a plugin's error fails the fit."""
    load_plugins()
    pm.hook.before_epochs(estimator=estimator, X=X, y=y)


def get_backbone(name: str) -> BackboneSpec:
    """Look a backbone up by name; open-ended names go to their prefix's resolver."""
    registry = backbones()
    if isinstance(name, str) and name not in registry:
        prefixes = backbone_prefixes()
        matching = [p for p in prefixes if name.startswith(p)]
        if matching:
            spec = prefixes[max(matching, key=len)].resolve(name)
            if not isinstance(spec, BackboneSpec):
                raise TypeError(f"the resolver of {max(matching, key=len)!r} returned {spec!r}")
            return spec
        if prefixes:
            try:
                return registry.get(name)
            except UnknownNameError as exc:
                also = ", ".join(f"{p}<name>" for p in sorted(prefixes))
                raise UnknownNameError(f"{exc} Also open-ended: {also}.") from None
    return registry.get(name)


def instantiate(factory: Callable[..., Any], params: dict[str, Any], what: str, prefix: str):
    """Call a registered factory with the estimator's ``<prefix>*`` params, naming them on error."""
    from .params.constraints import InvalidParameterError

    try:
        return factory(**params)
    except InvalidParameterError:
        raise  # a value the factory's constraints refused: the message names it already
    except TypeError as exc:
        given = ", ".join(prefix + k for k in params) or "none"
        raise TypeError(
            f"{what} does not accept the parameters given ({given}): {exc}{_takes(factory, prefix)}"
        ) from exc


def _takes(factory: Callable[..., Any], prefix: str) -> str:
    """``"; it takes freeze__bn, freeze__lr_decay"``: a factory's keyword parameters."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to list
        return ""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [prefix + n for n, p in signature.parameters.items() if p.kind in kinds]
    return f"; it takes {', '.join(names)}" if names else "; it takes no parameters"
