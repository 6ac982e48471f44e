"""``skft tune`` and ``skft predict`` on a CSV/TSV of texts; save/load of a text model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import skft
from skft import FineTunedClassifier
from skft.cli.main import main
from skft.data.text import load_text_table


def _write(path, texts, labels, delimiter=","):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(["message", "category"])
        writer.writerows(zip(texts, labels))


def test_tune_and_predict_on_a_csv(tiny_bert, texts, tmp_path, capsys):
    X, y = texts
    data = tmp_path / "messages.csv"
    _write(data, X, y)
    out = tmp_path / "run"
    args = ["tune", "--data", str(data), "--text-column", "message", "--label-column",
            "category", "--backbone", "hf:" + tiny_bert, "--trials", "2", "--cv", "2",
            "--epochs", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "model.skft").is_dir() and (out / "report.json").is_file()
    preds = tmp_path / "pred.csv"
    code = main(["predict", str(out / "model.skft"), str(data), "--text-column", "message",
                 "--out", str(preds)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with preds.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(X) and {r["prediction"] for r in rows} <= {"ham", "spam"}
    assert set(rows[0]) == {"id", "prediction", "proba_ham", "proba_spam"}


def test_missing_column_is_named(texts, tmp_path, capsys):
    X, y = texts
    data = tmp_path / "m.tsv"
    _write(data, X, y, delimiter="\t")
    assert main(["tune", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no column 'text'" in err and "message, category" in err
    texts_, labels, ids = load_text_table(data, "message", "category")
    assert texts_ == X and list(labels) == y and ids[0] == "1"


def test_save_and_load_a_text_model(fast, texts, tmp_path):
    X, y = texts
    clf = FineTunedClassifier(**fast).fit(X, y)
    clf.save(tmp_path / "m.skft")
    back = skft.load(tmp_path / "m.skft")
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    with pytest.raises(TypeError, match="not str"):
        back.predict(["fine", 3])


def test_text_demo_data_and_outputs(tmp_path, monkeypatch, capsys):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skft_transformers import demo

    X, y = demo.load_sms()
    assert len(X) == 1000 and (y == "spam").sum() == 134 and all(isinstance(t, str) for t in X)
    fast = [("TF-IDF + LR", make_pipeline(TfidfVectorizer(), LogisticRegression()))]
    monkeypatch.setattr(demo, "_methods", lambda seed: iter(fast))  # the MiniLM runs: benchmark
    assert main(["demo", "--text", "--out", str(tmp_path), "--n-train", "200"]) == 0
    out = capsys.readouterr().out
    assert "TF-IDF + LR" in out and "macro F1" in out
    assert (tmp_path / "text_demo.png").is_file() and (tmp_path / "results.json").is_file()


def _write_folder(root, texts, labels):
    for i, (text, label) in enumerate(zip(texts, labels)):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:03d}.txt").write_text(text + "\n", encoding="utf-8")


def test_tune_and_predict_on_a_folder_of_txt_files(tiny_bert, texts, tmp_path, capsys):
    X, y = texts
    data = tmp_path / "messages"
    _write_folder(data, X, y)
    out = tmp_path / "run"
    args = ["tune", "--data", str(data), "--backbone", "hf:" + tiny_bert, "--trials", "1",
            "--cv", "2", "--epochs", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert "24 samples, 2 classes" in capsys.readouterr().out
    preds = tmp_path / "pred.csv"
    assert main(["predict", str(out / "model.skft"), str(data), "--out", str(preds)]) == 0
    with preds.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(X) and rows[0]["id"] == "ham/000.txt"


def test_txt_folder_loader(texts, tmp_path):
    from skft.data.text import is_text_source, load_text_folder

    X, y = texts
    _write_folder(tmp_path / "d", X, y)
    got, labels, ids = load_text_folder(tmp_path / "d")
    assert sorted(zip(got, labels)) == sorted(zip(X, y))  # whitespace stripped, labels = folders
    assert is_text_source(tmp_path / "d") and not is_text_source(tmp_path / "nothing")
    (tmp_path / "img" / "a").mkdir(parents=True)
    (tmp_path / "img" / "a" / "x.png").write_bytes(b"")
    (tmp_path / "img" / "notes.txt").write_text("not data")
    assert not is_text_source(tmp_path / "img")  # images with a stray .txt: an image folder
    few = load_text_folder(tmp_path / "d", limit=4)
    assert sorted(few.labels) == ["ham", "ham", "spam", "spam"]  # spread over the classes
    unlabelled = load_text_folder(tmp_path / "d", labelled=False)
    assert unlabelled.labels is None and len(unlabelled.images) == len(X)
    (tmp_path / "d" / "loose.txt").write_text("no class", encoding="utf-8")
    with pytest.raises(ValueError, match="not in a class sub-folder"):
        load_text_folder(tmp_path / "d")
    (tmp_path / "d" / "loose.txt").unlink()
    (tmp_path / "d" / "ham" / "bad.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="bad.txt: not UTF-8"):
        load_text_folder(tmp_path / "d")


def test_fit_and_evaluate_a_csv(tiny_bert, texts, tmp_path, capsys):
    X, y = texts
    data = tmp_path / "messages.csv"
    _write(data, X, y)
    columns = ["--text-column", "message", "--label-column", "category"]
    out = tmp_path / "run"
    args = ["fit", str(data), *columns, "--backbone", "hf:" + tiny_bert, "--epochs", "1",
            "--set", "max_length=16", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"{len(X)} samples, 2 classes" in printed and "'max_length': 16" in printed
    assert main(["evaluate", str(out), str(data), *columns]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "accuracy " in printed and "recall per class (samples): ham " in printed
