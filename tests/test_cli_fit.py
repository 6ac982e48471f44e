"""``skft fit``, ``skft predict`` with scores and ``skft evaluate``, on tiny generated folders."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import skft
from skft.cli.fit import parse_value
from skft.cli.main import main
from skft.cli.predict import load_with_labels

TINY = ["--backbone", "smallcnn", "--image-size", "16", "--epochs", "1", "--quiet"]


def _images(root, classes=("red", "blue"), n=6, seed=0):
    """``root/<class>/<i>.png``: 16x16 noise tinted by class (red: channel 0, blue: 2)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in classes:
        (root / label).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            img[..., 0 if label == "red" else 2] += 180
            Image.fromarray(img).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model fitted by ``skft fit`` on a tiny folder, its output and a labelled val folder."""
    root = tmp_path_factory.mktemp("fit")
    train, val = _images(root / "train"), _images(root / "val", seed=1)
    out = root / "run"
    argv = ["fit", str(train), *TINY, "--set", "augment_strength=0.0", "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return SimpleNamespace(root=root, train=train, val=val, out=out, printed=printed.getvalue())


def test_fit_writes_a_model_folder_and_reports_what_it_used(fitted):
    printed = fitted.printed
    assert f"data {fitted.train}: 12 samples, 2 classes (blue 6, red 6)" in printed
    assert "FineTunedClassifier('smallcnn', random init)" in printed
    assert "fitted in " in printed and "(1 epochs)" in printed
    assert "resolved_params_: {" in printed and "'image_size': 16" in printed
    assert "training accuracy " in printed
    report = json.loads((fitted.out / "report.json").read_text())
    assert report["n_samples"] == 12 and report["classes"] == ["blue", "red"]
    assert report["params"]["augment_strength"] == 0.0
    assert report["resolved_params"]["max_epochs"] == 1
    assert 0 <= report["train_score"] <= 1
    assert (fitted.out / "report.txt").read_text().startswith("fitted in ")
    model = skft.load(fitted.out / "model.skft")
    assert list(model.classes_) == ["blue", "red"]
    assert model.resolved_params_ == report["resolved_params"]


def test_fit_prints_epochs_unless_quiet(tmp_path, capsys):
    train = _images(tmp_path / "train", n=3)
    argv = ["fit", str(train), *[a for a in TINY if a != "--quiet"], "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert "epoch   1/1" in capsys.readouterr().out


def test_predict_scores_a_labelled_folder(fitted, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", str(fitted.out), str(fitted.val), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "prediction", "proba_blue", "proba_red"]  # as before
    assert len(rows) == 13
    accuracy = np.mean([r[0].split("/")[0] == r[1] for r in rows[1:]])
    assert f"accuracy {accuracy:.4f}  macro F1 " in printed
    assert "confusion matrix (rows: true class, columns: predicted):" in printed
    assert (tmp_path / "p_confusion.png").stat().st_size > 5_000  # beside --out
    plot = tmp_path / "plots" / "cm.png"
    argv = ["predict", str(fitted.out), str(fitted.val), "--out", str(out), "--plot", str(plot)]
    assert main(argv) == 0
    assert plot.stat().st_size > 5_000 and f"wrote {plot}" in capsys.readouterr().out


def test_predict_without_labels_only_predicts(fitted, tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "new"
    flat.mkdir()
    Image.new("RGB", (16, 16), (200, 0, 0)).save(flat / "a.png")
    other = _images(tmp_path / "other", classes=("red", "green"), n=1)
    for data, why in ((flat, "a.png is not in a class sub-folder"), (other, "green")):
        out = tmp_path / f"{data.name}.csv"
        assert main(["predict", str(fitted.out / "model.skft"), str(data), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "not scored: " in printed and why in printed and "accuracy" not in printed
        assert not list(tmp_path.glob("*_confusion.png"))


def test_evaluate_prints_scores_and_writes_the_plot(fitted, tmp_path, capsys):
    plot, scores = tmp_path / "cm.png", tmp_path / "scores.json"
    model = str(fitted.out / "model.skft")
    argv = ["evaluate", model, str(fitted.val), "--plot", str(plot), "--json", str(scores)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads(scores.read_text())
    assert saved["labels"] == ["blue", "red"] and saved["support"] == [6, 6]
    assert f"accuracy {saved['accuracy']:.4f}  macro F1 {saved['macro_f1']:.4f}" in printed
    assert "recall per class (samples): blue " in printed and "(6)" in printed
    matrix = saved["confusion_matrix"]
    assert np.sum(matrix) == 12 and np.trace(matrix) == round(saved["accuracy"] * 12)
    assert plot.stat().st_size > 5_000
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(fitted.val / "red" / "0.png", flat / "0.png")
    assert main(["evaluate", model, str(flat)]) == 2
    err = capsys.readouterr().err
    assert "has no labels to score against: 0.png is not in a class sub-folder" in err


def test_fit_and_evaluate_a_regressor(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.random((24, 8, 8)).astype("float32")
    np.savez(tmp_path / "d.npz", X=X, y=X.mean(axis=(1, 2)))
    out = tmp_path / "run"
    assert main(["fit", str(tmp_path / "d.npz"), *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "targets from " in printed and "FineTunedRegressor" in printed
    assert "training R² " in printed
    plot = tmp_path / "x.png"
    assert main(["evaluate", str(out), str(tmp_path / "d.npz"), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "MSE " in printed and "MAE " in printed and "R² " in printed
    assert not plot.exists()  # no confusion matrix for a regressor


def test_fit_refuses_bad_settings_before_reading_data(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    for args, words in (
        (["--set", "lrr=0.1"], "not a parameter of the estimators; did you mean 'lr'?"),
        (["--lr", "0.1", "--set", "lr=0.2"], "lr is given twice (use --lr or --set"),
        (["--set", "frozen_depth=-2"], "frozen_depth must be an int >= 0"),
        (["--set", "augment=basicc"], "Did you mean 'basic'?"),
        (["--backbone", "smallcn"], "Did you mean 'smallcnn'?"),
    ):
        argv = ["fit", missing, "--backbone", "smallcnn", *args, "--out", str(tmp_path / "o")]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert words in err and "does not exist" not in err, (args, err)
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as info:
        main(["fit", missing, "--set", "lr"])
    assert info.value.code == 2
    assert "argument --set: must be NAME=VALUE" in capsys.readouterr().err


def test_fit_needs_two_classes(tmp_path, capsys):
    data = _images(tmp_path / "d", classes=("red",), n=3)
    assert main(["fit", str(data), *TINY, "--out", str(tmp_path / "o")]) == 2
    assert "need at least 2 classes, found 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, value",
    [("3e-4", 3e-4), ("5", 5), ("all", "all"), ("True", True), ("false", False)]
    + [("None", None), ("none", "none"), ("[1, 2]", [1, 2]), ("cosine", "cosine"), ("'0'", "0")],
)
def test_set_values(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_labels_of_a_table_come_from_its_label_column(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("text,label\nhello,spam\nhi,ham\n")
    classifier = SimpleNamespace(classes_=np.array(["ham", "spam"]))
    data = load_with_labels(classifier, str(table))
    assert data.X == ["hello", "hi"] and list(data.y) == ["spam", "ham"]
    data = load_with_labels(classifier, str(table), label_column="class")
    assert data.y is None and data.why_unlabelled == "no column 'class' (--label-column)"
    table.write_text("text,label\nhello,0.5\nhi,2\n")
    data = load_with_labels(SimpleNamespace(), str(table))  # a regressor
    assert data.y.tolist() == [0.5, 2.0]
