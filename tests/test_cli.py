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


# --------------------------------------------------------------------------
# skft tune / skft predict
# --------------------------------------------------------------------------

TINY = ["--backbone", "smallcnn", "--cv", "2", "--epochs", "2", "--image-size", "16"]


def test_tune_then_predict_digits(tmp_path, capsys):
    import csv

    import joblib
    import numpy as np

    out = tmp_path / "run"
    assert main(["tune", *TINY, "--trials", "3", "--limit", "60", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for n in (1, 2, 3):
        assert f"trial   {n}/3" in printed  # progress, one line per trial
    report = json.loads((out / "report.json").read_text())
    assert len(report["trials"]) == 3 and 0 <= report["best_score"] <= 1
    assert set(report["best_params"]) >= {"lr", "frozen_depth"}
    assert "best CV accuracy" in (out / "report.txt").read_text()
    for plot in ("history.png", "importances.png"):
        assert (out / plot).stat().st_size > 5_000
    model = joblib.load(out / "model.joblib")
    assert model.get_params()["lr"] == report["best_params"]["lr"]

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "new.npz", X=(X[100:110].reshape(-1, 8, 8) / 16).astype(np.float32))
    csv_path = tmp_path / "preds.csv"
    assert (
        main(
            [
                "predict",
                str(out / "model.joblib"),
                str(tmp_path / "new.npz"),
                "--out",
                str(csv_path),
            ]
        )
        == 0
    )
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["id", "prediction", *[f"proba_{c}" for c in range(10)]]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(10)]
    probs = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert [int(r[1]) for r in rows[1:]] == list(model.classes_[probs.argmax(axis=1)])


def test_tune_image_folder_skips_unreadable_files(tmp_path, capsys):
    import csv

    import numpy as np
    from PIL import Image

    data = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label, colour in (("red", 0), ("blue", 2)):
        (data / label).mkdir(parents=True)
        for i in range(6):
            img = rng.integers(0, 60, (20, 24, 3), dtype=np.uint8)
            img[..., colour] += 180
            Image.fromarray(img).save(data / label / f"{i}.png")
    (data / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    (data / "blue" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    assert main(["tune", *TINY, "--data", str(data), "--trials", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "notes.txt" in err and "skipped" in err
    report = json.loads((out / "report.json").read_text())
    assert report["n_complete"] == 1
    csv_path = tmp_path / "p.csv"
    assert main(["predict", str(out / "model.joblib"), str(data), "--out", str(csv_path)]) == 0
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["id", "prediction", "proba_blue", "proba_red"]
    assert sorted(r[0] for r in rows[1:]) == sorted(
        f"{c}/{i}.png" for c in ("red", "blue") for i in range(6)
    )  # the 12 readable images, nothing silently lost
    assert {r[1] for r in rows[1:]} <= {"red", "blue"}


def test_tune_errors(tmp_path, capsys):
    assert main(["tune", "--backbone", "smallcnnn", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'smallcnn'" in capsys.readouterr().err
    assert main(["tune", *TINY, "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "not 'digits'" in capsys.readouterr().err
