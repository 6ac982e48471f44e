"""The ``before_epochs`` hook: once per fit that builds the module, before the first epoch."""

from __future__ import annotations

import pytest
import torch

from skft import FineTunedClassifier, hookimpl
from skft.plugins import pm


class StagePlugin:
    """Records each call and what the estimator held then; optionally raises."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict] = []
        self.error = error

    @hookimpl
    def before_epochs(self, estimator, X, y):
        if self.error is not None:
            raise self.error
        self.calls.append(
            {
                "X": X.shape,
                "y": y.dtype,
                "epochs": len(estimator.history),
                "weights": estimator.module_.head.weight.detach().clone(),
                "draw": torch.rand(1).item(),  # seeded from random_state
            }
        )


@pytest.fixture
def stage():
    plugin = StagePlugin()
    pm.register(plugin, "stage-recorder")
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_called_once_per_fit_before_the_first_epoch(stage, fast, digits):
    X, y = digits
    clf = FineTunedClassifier(**fast).fit(X, y)
    assert len(stage.calls) == 1
    call = stage.calls[0]
    assert call["X"][0] == len(X) and call["y"] == torch.int64 and call["epochs"] == 0
    assert not torch.equal(call["weights"], clf.module_.head.weight)  # epochs came after
    clf.partial_fit(X, y)  # continuing: no second call
    assert len(stage.calls) == 1
    FineTunedClassifier(**fast).fit(X, y)  # same random_state: the same torch draws
    assert stage.calls[1]["draw"] == call["draw"]


def test_first_partial_fit_calls_it_and_warm_start_does_not(stage, fast, digits):
    X, y = digits
    clf = FineTunedClassifier(**{**fast, "warm_start": True}).partial_fit(X, y)
    clf.fit(X, y)
    assert len(stage.calls) == 1


def test_resumed_checkpoint_does_not_call_it(stage, fast, digits, tmp_path):
    X, y = digits
    FineTunedClassifier(**fast, checkpoint=tmp_path).fit(X, y)
    FineTunedClassifier(**fast, checkpoint=tmp_path).fit(X, y)  # resumes: all epochs done
    assert len(stage.calls) == 1


def test_errors_propagate_to_fit(fast, digits):
    plugin = StagePlugin(error=ValueError("stage refuses this backbone"))
    pm.register(plugin, "stage-refuser")
    try:
        with pytest.raises(ValueError, match="stage refuses"):
            FineTunedClassifier(**fast).fit(*digits)
    finally:
        pm.unregister(plugin)
