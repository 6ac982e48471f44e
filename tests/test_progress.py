"""Per-batch progress bars: for long epochs when verbose, never by default, not in searches."""

from __future__ import annotations

import re

import pytest

from skft import FineTunedClassifier, OptunaSearch
from skft.training.progress import in_search

pytest.importorskip("optuna")

BAR_AT_ONCE = {"callbacks__epoch_log__bar_after": 0.0}  # every epoch counts as long


def _bar(captured: str) -> bool:
    return re.search(r"\d+/\d+ \[.*batch", captured) is not None  # tqdm: "3/4 [00:00, 9batch/s]"


def test_bar_for_long_epochs_only_when_verbose(digits, fast, capsys):
    X, y = digits
    FineTunedClassifier(**fast, **BAR_AT_ONCE).fit(X, y)  # verbose=0
    assert capsys.readouterr().err == ""
    FineTunedClassifier(**{**fast, "verbose": 1}, **BAR_AT_ONCE).fit(X, y)
    assert _bar(capsys.readouterr().err)
    FineTunedClassifier(**{**fast, "verbose": 1}).fit(X, y)  # epochs shorter than 5 s
    assert not _bar(capsys.readouterr().err)
    never = {"callbacks__epoch_log__bar_after": None}
    FineTunedClassifier(**{**fast, "verbose": 1}, **never).fit(X, y)
    assert not _bar(capsys.readouterr().err)


def test_no_bar_inside_searches_unless_verbose_2(digits, fast, capsys):
    X, y = digits
    with in_search():
        FineTunedClassifier(**{**fast, "verbose": 1}, **BAR_AT_ONCE).fit(X, y)
        assert not _bar(capsys.readouterr().err)
        FineTunedClassifier(**{**fast, "verbose": 2}, **BAR_AT_ONCE).fit(X, y)
        assert _bar(capsys.readouterr().err)
    est = FineTunedClassifier(**{**fast, "verbose": 1, "max_epochs": 1}, **BAR_AT_ONCE)
    OptunaSearch(est, {"lr": [1e-3]}, n_trials=1, cv=2, refit=False, random_state=0).fit(X, y)
    assert not _bar(capsys.readouterr().err)
