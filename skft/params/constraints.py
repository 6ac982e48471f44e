"""Constraints of the parameters plugin factories take (``freeze__*``, ``head__*``, ...).

A factory (a freezing policy, a head, an augmenter) declares its parameters' constraints
as scikit-learn estimators do, in a ``_parameter_constraints`` dict of
:class:`~sklearn.utils._param_validation.Interval`, ``StrOptions``, types, ``None``,
``"boolean"`` ..., and checks the values it is given with :func:`check_parameters`. The
error names the parameter as the user wrote it (``freeze__r must be an int in the range
[1, inf), got 0``); ``True``/``False`` are refused where no ``"boolean"`` is listed
(scikit-learn counts a bool as an int). :mod:`skft.plugin_api` exports all of it.

This module imports nothing from skft, so every factory module may import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "Integral",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Real",
    "StrOptions",
    "check_parameters",
]

_WHAT = re.compile(r"must be (.*)\. Got .* instead\.\s*$", re.S)


def _described(constraints: list[Any], name: str) -> str:
    """What scikit-learn's message says ``constraints`` accept ("an int in the range ...")."""
    try:
        validate_parameter_constraints({name: constraints}, {name: _Nothing()}, caller_name="")
    except InvalidParameterError as exc:
        found = _WHAT.search(str(exc))
        if found:
            return found.group(1)
    return " or ".join(map(str, constraints))


class _Nothing:
    """A value no constraint accepts (to have scikit-learn describe the constraints)."""


def check_parameters(
    constraints: Mapping[str, list[Any]], values: Mapping[str, Any], prefix: str = ""
) -> None:
    """Check ``values`` against ``constraints`` (scikit-learn's ``_parameter_constraints``).

    ``prefix`` is how the estimator spells the factory's parameters (``"freeze__"``).
    Names without constraints are not checked.

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` and a ``TypeError``: ``"<prefix><name> must be <what the
        constraints accept>, got <value>"``.
    """
    for name, value in values.items():
        allowed = constraints.get(name)
        if allowed is None:
            continue
        refused = isinstance(value, bool) and "boolean" not in allowed and bool not in allowed
        if not refused:
            try:
                validate_parameter_constraints({name: allowed}, {name: value}, caller_name="")
                continue
            except InvalidParameterError:
                pass
        raise InvalidParameterError(
            f"{prefix}{name} must be {_described(allowed, name)}, got {value!r}"
        )
