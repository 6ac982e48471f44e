"""Data-parallel fits through Accelerate: two CPU processes (gloo) against one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "accelerate_fit.py"
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _run(cmd: list[str], out: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    args = [str(SCRIPT), "--backbone", "mlp", "--epochs", "3", "--out", str(out)]
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.skipif(
    not ACCELERATE.exists() and shutil.which("accelerate") is None, reason="no accelerate"
)
def test_two_cpu_processes_match_one(tmp_path):
    launcher = str(ACCELERATE if ACCELERATE.exists() else shutil.which("accelerate"))
    _run([sys.executable], tmp_path / "one")
    two = tmp_path / "two"
    _run(
        [
            launcher,
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
        ],
        two,
    )
    setups = [json.loads((two / f"setup{r}.json").read_text()) for r in (0, 1)]
    assert all(s["processes"] == 2 and s["backend"] == "gloo" for s in setups), setups
    assert "MULTI_CPU" in setups[0]["type"]
    rank0, rank1 = (torch.load(two / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "one" / "rank0.pt")
    assert rank0.keys() == rank1.keys() == single.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key  # both ranks hold the same weights
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.load(two / "proba0.npy"), np.load(tmp_path / "one" / "proba0.npy"), atol=1e-4
    )


def test_accelerated_estimator_in_one_process(digits, fast, monkeypatch):
    from accelerate import Accelerator
    from sklearn.base import clone

    import skft.training.accelerated
    from skft.training.accelerated import AcceleratedClassifier

    X, y = digits
    augmented = []
    real = skft.training.accelerated.augment_batch
    def counting(net, b):
        augmented.append(1)
        return real(net, b)

    monkeypatch.setattr(skft.training.accelerated, "augment_batch", counting)
    clf = AcceleratedClassifier(
        accelerator=Accelerator(cpu=True), **{**fast, "augment_strength": 0.5}
    )
    clf.fit(X, y)
    assert len(augmented) == 2 * 4  # 2 epochs of 4 batches, each through skft's augmentation
    assert clf.predict_proba(X).shape == (60, 3)
    assert clf.device is None and clf.iterator_train is torch.utils.data.DataLoader
    twin = clone(clf)
    assert twin.get_params()["accelerator"] is clf.accelerator
