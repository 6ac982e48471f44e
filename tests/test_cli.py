"""The ``skft`` command line, on a tiny version of the demo."""

from __future__ import annotations

import json

import pytest

from skft.cli import main


def test_demo_writes_table_results_and_plot(tmp_path, capsys):
    pytest.importorskip("skft_timm")
    code = main(
        [
            "demo",
            "--n-train",
            "30",
            "--n-test",
            "30",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for words in ("fine-tune", "from scratch", "linear probe", "accuracy", "epoch  1/1"):
        assert words in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in rows] == ["fine-tune", "from scratch", "linear probe"]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_demo_unknown_backbone(capsys, tmp_path):
    assert main(["demo", "--backbone", "resnet81", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'resnet18'" in capsys.readouterr().err


def test_plugins_listing(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "depth" in out and "basic" in out
