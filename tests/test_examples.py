"""The Quick start of the README and the docs is ``examples/quickstart.py``: the same code,
and it runs; the README stays short."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import skft.data.datasets

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.py"


@pytest.mark.parametrize("page", ["README.md", "docs/quickstart.md"])
def test_quick_start_is_the_example_file(page):
    text = (ROOT / page).read_text()
    section = text.split("# Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = QUICKSTART.read_text().split('"""', 2)[2].lstrip("\n")
    assert block == code


def test_readme_is_short_and_points_to_the_docs():
    """A newcomer reads the README in five minutes; the rest is in docs/ (make docs)."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
    for command in ("make demo", "make demo-text", "make test", "make docs"):
        assert command in readme


@pytest.mark.slow
def test_quickstart_runs_and_prints_its_results(monkeypatch, capsys):
    """The script as written, on 20 training and 20 test images instead of 300 and 500."""
    real = skft.data.datasets.load_digits_images

    def fewer(n_train=None, n_test=None, **kwargs):
        return real(n_train=20, n_test=20, **kwargs)

    monkeypatch.setattr(skft.data.datasets, "load_digits_images", fewer)
    runpy.run_path(str(QUICKSTART), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"fine-tuned: test accuracy 0\.\d{3}|fine-tuned: test accuracy 1\.000", lines[0]
    )
    assert re.fullmatch(
        r"search: best parameters \{'frozen_depth': .*\}, CV accuracy [01]\.\d{3}", lines[1]
    )
    assert lines[2].startswith("search: test accuracy of the refitted best ")


def test_readme_and_makefile_offer_a_cpu_only_torch():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    line = "make test TORCH_INDEX=https://download.pytorch.org/whl/cpu"
    assert line in readme and "CPU-only" in readme
    assert "TORCH_INDEX ?=" in makefile
    assert "--index-url $(TORCH_INDEX)" in makefile  # the same pinned versions, another index
    assert makefile.count("torch==2.14.1 torchvision==0.29.1") == 1


def test_readme_and_docs_say_how_to_turn_progress_on():
    readme = (ROOT / "README.md").read_text()
    parameters = (ROOT / "docs" / "guide" / "estimators.md").read_text()
    assert "| `verbose` | `0` | silent" in parameters
    assert "`verbose=1` prints one line per epoch" in readme


@pytest.mark.slow
@pytest.mark.example
def test_learning_curve_quick(tmp_path, capsys):
    module = runpy.run_path(str(ROOT / "examples" / "learning_curve.py"), run_name="example")
    results = module["main"](["--quick", "--out", str(tmp_path)])
    assert set(results) == {
        "fine-tune (pretrained)",
        "linear probe (pretrained)",
        "from scratch",
        "SVC on pixels",
    }
    assert all(len(scores) == 2 and all(0 <= s <= 1 for s in scores) for scores in results.values())
    assert (tmp_path / "learning_curve.png").stat().st_size > 10_000
    assert "gap: pretrained - scratch" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.example
def test_transfer_learning_quick_falls_back_and_reports(tmp_path, capsys, monkeypatch):
    """Without VGG weights the example says so, trains Lite0 with an MLP head, and reports."""
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))  # no cached file
    module = runpy.run_path(str(ROOT / "examples" / "transfer_learning.py"), run_name="example")
    result = module["main"](["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "note: no vgg11 weights here" in out and "--weights" in out
    assert result["backbone"] == "efficientnet_lite0"
    report = result["report"]
    assert {"0", "1", "2"} <= set(report) and 0 <= result["accuracy"] <= 1
    assert all(0 <= report[c]["recall"] <= 1 and 0 <= report[c]["f1-score"] <= 1 for c in "012")
    assert result["plot"].stat().st_size > 5_000


def test_transfer_learning_takes_a_local_weights_file(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "transfer_learning.py"), run_name="example")
    weights = tmp_path / "vgg11.pth"
    assert module["choose_backbone"]("vgg11", weights) == ("vgg11", str(weights))
    assert module["choose_backbone"]("efficientnet_lite0", None) == ("efficientnet_lite0", True)


@pytest.mark.slow
@pytest.mark.example
def test_regression_quick_reports_both_losses_and_metrics(tmp_path, capsys):
    module = runpy.run_path(str(ROOT / "examples" / "regression.py"), run_name="example")
    results = module["main"](["--quick", "--out", str(tmp_path)])
    assert set(results) == {"MSE loss", "MAE loss", "predict the mean"}
    for metrics in results.values():
        assert metrics["MSE"] >= metrics["MAE"] ** 2 - 1e-6  # Jensen: MSE >= MAE^2
    assert (tmp_path / "regression_prediction_error.png").stat().st_size > 10_000
    assert "test MAE" in capsys.readouterr().out


def test_regression_targets_are_the_applied_rotation():
    """The angle a digit is turned by is recoverable: turning back restores the image."""
    from torchvision.transforms.v2 import functional as F

    module = runpy.run_path(str(ROOT / "examples" / "regression.py"), run_name="example")
    X = np.zeros((3, 48, 48), np.float32)
    X[:, 8:40, 22:26] = 1.0  # a vertical bar
    out, angles = module["rotated"](X, 45.0, 32, seed=0)
    assert out.shape == (3, 1, 32, 32) and np.all(np.abs(angles) <= 45)
    for img, angle in zip(out, angles):
        back = F.rotate(torch.as_tensor(img), -float(angle), F.InterpolationMode.BILINEAR)
        upright = torch.as_tensor(X[0, 8:40, 8:40])[None]
        assert torch.mean(torch.abs(back - upright)[:, 8:24, 8:24]) < 0.1
        if abs(angle) > 10:  # and it really was turned
            assert torch.mean(torch.abs(torch.as_tensor(img) - upright)[:, 8:24, 8:24]) > 0.1


@pytest.mark.slow
@pytest.mark.example
def test_compress_deploy_quick(tmp_path, capsys):
    module = runpy.run_path(str(ROOT / "examples" / "compress_deploy.py"), run_name="example")
    results = module["main"](["--quick", "--out", str(tmp_path)])
    assert list(results) == ["float32", "pruned 0.3", "int8", "pruned 0.3 + int8"]
    assert all(0 <= r["accuracy"] <= 1 and r["latency_ms"] > 0 for r in results.values())
    size = {name: r["size_mb"] for name, r in results.items()}
    assert size["int8"] < size["float32"] and size["pruned 0.3 + int8"] < size["pruned 0.3"]
    assert results["pruned 0.3"]["params"] < results["float32"]["params"]
    assert (tmp_path / "compress_deploy.png").stat().st_size > 10_000
    assert "x smaller" in capsys.readouterr().out
