"""Plugin factories' parameter constraints (skft.params.constraints): scikit-learn's
machinery, errors that name the parameter as the user spells it."""

from __future__ import annotations

import pytest

from skft.params.constraints import (
    Integral,
    Interval,
    InvalidParameterError,
    Real,
    StrOptions,
    check_parameters,
)
from skft.plugin_api import check_parameters as exported

CONSTRAINTS = {
    "r": [Interval(Integral, 1, None, closed="left")],
    "share": [None, Interval(Real, 0, 1, closed="right")],
    "mode": [StrOptions({"a", "b"})],
    "flag": ["boolean"],
}


@pytest.mark.parametrize(
    "values",
    [{"r": 1}, {"r": 10**9}, {"share": None}, {"share": 1}, {"mode": "b"}, {"flag": False}],
)
def test_accepted(values):
    check_parameters(CONSTRAINTS, values, "freeze__")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"r": 0}, r"^freeze__r must be an int in the range \[1, inf\), got 0$"),
        ({"r": 1.0}, r"^freeze__r must be an int in the range \[1, inf\), got 1.0$"),
        ({"r": True}, r"^freeze__r must be an int in the range \[1, inf\), got True$"),
        ({"share": 0.0}, r"^freeze__share must be .*None.*, got 0.0$"),
        # a set: its order is the process's (string hashing)
        ({"mode": "c"}, r"^freeze__mode must be a str among \{'[ab]', '[ab]'\}, got 'c'$"),
        ({"flag": 1}, r"^freeze__flag must be an instance of 'bool'.*, got 1$"),
    ],
)
def test_refused_with_the_users_name(values, message):
    with pytest.raises(InvalidParameterError, match=message) as info:
        check_parameters(CONSTRAINTS, values, "freeze__")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_names_without_constraints_are_not_checked():
    check_parameters(CONSTRAINTS, {"other": object()})


def test_plugins_get_it_from_the_plugin_api():
    assert exported is check_parameters


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"head__hidden": 0}, r"head__hidden must be an int in the range \[1, inf\), got 0"),
        ({"head__layers": True}, r"head__layers must be an int in the range \[1, inf\)"),
        ({"head__dropout": 1.0}, r"head__dropout must be a float in the range \[0.0, 1.0\)"),
    ],
)
def test_mlp_head_parameters(params, message):
    from skft.builtin.heads import mlp_head

    with pytest.raises(ValueError, match=message):
        mlp_head(8, 2, **{k.removeprefix("head__"): v for k, v in params.items()})
