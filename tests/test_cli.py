"""The ``skft`` command line: demo, plugins, tune and predict, on tiny settings."""

from __future__ import annotations

import json

import pytest

from skft.cli.main import DEMO_TIME, build_parser, main


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


def test_demo_prints_versions_and_threads_first(tmp_path, capsys):
    import sklearn
    import torch

    import skft
    from skft.cli.demo import run_demo

    results = run_demo("smallcnn", 20, 20, 1, 16, tmp_path, pretrained=False)
    assert [r.method for r in results] == ["fine-tune", "from scratch", "linear probe"]
    first, second = capsys.readouterr().out.splitlines()[:2]
    for part in (
        f"skft {skft.__version__}",
        f"torch {torch.__version__}",
        "torchvision ",
        f"scikit-learn {sklearn.__version__}",
        "numpy ",
        f"torch threads {torch.get_num_threads()}",
    ):
        assert part in first
    assert second.startswith("digits: 20 training and 20 test images")


def test_demo_unknown_backbone(capsys, tmp_path):
    assert main(["demo", "--backbone", "resnet81", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'resnet18'" in capsys.readouterr().err


def test_plugins_listing(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "depth" in out and "basic" in out


def test_plugins_listing_names_open_ended_patterns(capsys):
    pytest.importorskip("skft_timm")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "also: timm:<any timm model name> (skft-timm)" in out


def test_plugins_listing_follows_resolve_hook_implementations(capsys):
    from skft import hookimpl
    from skft.plugins import load_plugins, pm

    class ToyResolver:
        @hookimpl
        def register_backbone_prefixes(self, register):
            register("toy:", lambda name: None)

    load_plugins()
    pm.register(ToyResolver(), "toy")
    try:
        assert main(["plugins"]) == 0
        assert f"also: toy:<any toy model name> ({__name__})" in capsys.readouterr().out
    finally:
        pm.unregister(name="toy")
    assert main(["plugins"]) == 0
    assert "toy:" not in capsys.readouterr().out


# --------------------------------------------------------------------------
# help texts
# --------------------------------------------------------------------------


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text(capsys):
    out = _help(capsys)
    assert "skft command line" in out and "``" not in out
    for command in ("demo", "plugins", "fit", "predict", "evaluate", "tune"):
        assert "``" not in _help(capsys, command)


def test_every_option_has_help_and_shows_its_default(capsys):
    import argparse

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"skft {name} {'/'.join(action.option_strings) or action.dest}"
    out = " ".join(_help(capsys, "tune").split())
    assert "trials in the study (all workers) (default: 20)" in out
    assert "(default: median)" in out and "(default: digits)" in out


def test_demo_help_says_how_long_it_takes(capsys):
    # measured: 51 s for `skft demo` on 2 idle cores; README says "about a minute" too
    assert DEMO_TIME == "about a minute on 2 idle CPU cores"
    assert DEMO_TIME in " ".join(_help(capsys, "demo").split())
    assert DEMO_TIME in " ".join(_help(capsys).split())  # in the command list too


# --------------------------------------------------------------------------
# skft tune / skft predict
# --------------------------------------------------------------------------

TINY = ["--backbone", "smallcnn", "--cv", "2", "--epochs", "2", "--image-size", "16"]


def test_tune_then_predict_digits(tmp_path, capsys):
    import csv

    import numpy as np

    import skft

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
    # one numbering (from 1) in progress lines, report.json and report.txt
    assert [t["trial"] for t in report["trials"]] == [1, 2, 3]
    assert [t["optuna_trial_number"] for t in report["trials"]] == [0, 1, 2]
    best = report["best_trial"]
    best_row = report["trials"][best - 1]
    assert best_row["value"] == pytest.approx(report["best_score"])
    assert f"(trial {best})" in (out / "report.txt").read_text()
    table = (out / "report.txt").read_text().split("params\n")[1].splitlines()
    assert [int(line.split()[0]) for line in table] == [1, 2, 3]
    progress = [line for line in printed.splitlines() if line.startswith("trial ")]
    assert f"score {best_row['value']:.4f}" in progress[best - 1]
    model = skft.load(out / "model.skft")
    assert model.get_params()["lr"] == report["best_params"]["lr"]

    from skft.data.datasets import load_digits_images

    X, _ = load_digits_images()
    np.savez(tmp_path / "new.npz", X=X[100:110])
    csv_path = tmp_path / "preds.csv"
    assert (
        main(
            [
                "predict",
                str(out / "model.skft"),
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
    assert main(["predict", str(out / "model.skft"), str(data), "--out", str(csv_path)]) == 0
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
    err = capsys.readouterr().err
    assert "not 'digits'" in err
    assert f"'{tmp_path / 'missing'}' does not exist" in err
    (tmp_path / "t.json").write_text("{}")
    assert main(["tune", *TINY, "--data", str(tmp_path / "t.json"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not 'digits', an .npz file or a folder" in err and "does not exist" not in err
    (tmp_path / "table.csv").write_text("a,b\n")  # a table of texts without a 'text' column
    assert main(["tune", *TINY, "--data", str(tmp_path / "table.csv"), "--out", str(tmp_path)]) == 2
    assert "no column 'text' (columns: a, b)" in capsys.readouterr().err


def test_tune_needs_two_classes(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "only").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / "only" / f"{i}.png")
    assert main(["tune", *TINY, "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "need at least 2 classes, found 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_history_plot_is_labelled_with_the_metric():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from skft.cli.report import history_figure

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    fig = history_figure(study, "CV accuracy")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "CV accuracy" and ax.get_xlabel() == "trial"
    points = ax.collections[0].get_offsets()
    assert list(points[:, 0]) == [1, 2, 3, 4]  # trials from 1, as in the report
    np_values = [t.value for t in study.trials]
    assert list(points[:, 1]) == pytest.approx(np_values)
    plt.close(fig)


def test_predict_reads_pickles_only_when_trusted(tmp_path, capsys, digits, fast):
    import joblib
    import numpy as np

    from skft import FineTunedClassifier

    X, y = digits
    joblib.dump(FineTunedClassifier(**fast).fit(X, y), tmp_path / "model.joblib")
    np.savez(tmp_path / "new.npz", X=X[:4])
    args = ["predict", str(tmp_path / "model.joblib"), str(tmp_path / "new.npz")]
    csv_path = tmp_path / "p.csv"
    assert main([*args, "--out", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert "loading it can run any code it holds, so skft predict refuses it" in err
    assert "--trust-pickle" in err and not csv_path.exists()
    assert main([*args, "--out", str(csv_path), "--trust-pickle"]) == 0
    assert len(csv_path.read_text().splitlines()) == 5


def test_demos_come_from_the_register_demos_hook(monkeypatch):
    """`skft demo --text` runs the demo a plugin registered as "text"; none: exit 2."""
    from skft import hookimpl
    from skft.plugins import demos, load_plugins, pm

    ran = []

    class ToyDemo:
        @hookimpl
        def register_demos(self, register):
            register("toy", lambda n_train, out, seed: ran.append((n_train, out, seed)))

    load_plugins()
    pm.register(ToyDemo(), "toy-demo")
    try:
        demos().get("toy")(5, None, 1)
        assert ran == [(5, None, 1)]
    finally:
        pm.unregister(name="toy-demo")
    assert "toy" not in demos()
    blocked = [p for n, p in pm.list_name_plugin() if n == "transformers"]
    for plugin in blocked:
        pm.unregister(plugin)
    try:
        assert main(["demo", "--text"]) == 2  # no plugin registers "text"
    finally:
        for plugin in blocked:
            pm.register(plugin, "transformers")
