"""lr_schedule: the rate over a fit (warm-up, then linear or cosine decay), per group."""

from __future__ import annotations

import numpy as np
import pytest

from skft import FineTunedClassifier
from skft.training.schedule import schedule_factor


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_factor_warms_up_then_decays_and_never_reaches_zero(kind):
    total = 50
    f = [schedule_factor(kind, s, total) for s in range(total)]
    peak = int(np.argmax(f))
    assert peak == 5  # the end of the 10% warm-up
    assert all(a < b for a, b in zip(f[:peak], f[1 : peak + 1]))  # rising
    assert all(a > b for a, b in zip(f[peak:], f[peak + 1 :]))  # falling
    assert 0 < f[-1] < 0.05 and f[0] < 0.2
    assert schedule_factor(kind, 10 * total, total) == f[-1]  # past the end: the last factor
    assert {schedule_factor("constant", s, total) for s in range(total)} == {1.0}


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_a_fit_follows_its_schedule_in_every_group(digits, fast, kind, rate_recorder):
    X, y = digits  # 60 images, batches of 16: 4 steps an epoch
    record = rate_recorder
    settings = {**fast, "max_epochs": 3, "lr": 1e-2, "freeze__lr_decay": 0.5}
    clf = FineTunedClassifier(**settings, lr_schedule=kind, callbacks=[("rec", record)])
    clf.fit(X, y)
    steps = 3 * int(np.ceil(len(X) / 16))
    assert len(record.rates) == steps
    for i, rates in enumerate(record.rates):
        factor = schedule_factor(kind, i, steps)
        base = {name: r / factor for name, r in rates.items()}
        assert base["head"] == pytest.approx(1e-2)
        assert base["block3"] == pytest.approx(1e-2 * 0.5)  # layer-wise decay still applies
    heads = [r["head"] for r in record.rates]
    assert (max(heads) == min(heads)) == (kind == "constant")


def test_bad_lr_schedule_is_refused_before_any_work(digits, fast):
    X, y = digits
    with pytest.raises(ValueError, match="lr_schedule must be 'constant', 'linear', 'cosine'"):
        FineTunedClassifier(**fast, lr_schedule="step").fit(X, y)
