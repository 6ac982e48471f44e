"""``skft`` argument checks: a bad number exits 2 before any data is read; one default each."""

from __future__ import annotations

import argparse

import pytest

from skft.cli.main import build_parser, main


def _subcommands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices.items()


@pytest.mark.parametrize(
    "argv, option",
    [
        (["tune", "--trials", "0"], "--trials"),
        (["tune", "--trials", "-3"], "--trials"),
        (["tune", "--cv", "1"], "--cv"),
        (["tune", "--epochs", "0"], "--epochs"),
        (["tune", "--image-size", "0"], "--image-size"),
        (["tune", "--batch-size", "0"], "--batch-size"),
        (["tune", "--timeout", "0"], "--timeout"),
        (["tune", "--timeout", "nan"], "--timeout"),
        (["tune", "--jobs", "0"], "--jobs"),
        (["tune", "--heartbeat", "0"], "--heartbeat"),
        (["tune", "--limit", "0"], "--limit"),
        (["predict", "model.skft", "DATA", "--limit", "0"], "--limit"),
        (["demo", "--n-train", "0"], "--n-train"),
        (["fit", "DATA", "--epochs", "0"], "--epochs"),
        (["fit", "DATA", "--lr", "0"], "--lr"),
        (["fit", "DATA", "--lr", "nan"], "--lr"),
        (["fit", "DATA", "--batch-size", "0"], "--batch-size"),
        (["fit", "DATA", "--image-size", "4"], "--image-size"),
        (["fit", "DATA", "--frozen-depth", "-1"], "--frozen-depth"),
        (["fit", "DATA", "--limit", "0"], "--limit"),
        (["evaluate", "model.skft", "DATA", "--limit", "0"], "--limit"),
        (["dashboard", "DATA", "--port", "0"], "--port"),
    ],
)
def test_bad_numbers_exit_2_before_reading_data(tmp_path, capsys, argv, option):
    missing = str(tmp_path / "missing")
    argv = [missing if a == "DATA" else a for a in argv]
    if argv[0] == "tune":
        argv += ["--data", missing, "--out", str(tmp_path / "out")]
    if argv[0] == "fit":
        argv += ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be >" in err
    assert "does not exist" not in err and "missing" not in err
    assert not (tmp_path / "out").exists()


def test_good_numbers_still_parse():
    args = build_parser().parse_args(["tune", "--trials", "1", "--cv", "2", "--timeout", "0.5"])
    assert (args.trials, args.cv, args.timeout) == (1, 2, 0.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "--trials", "two"])


def test_every_option_states_its_default_at_most_once(capsys):
    for name, command in _subcommands():
        formatter = command._get_formatter()
        for action in command._actions:
            text = formatter._expand_help(action) if action.help else ""
            where = f"skft {name} {'/'.join(action.option_strings) or action.dest}"
            assert text.lower().count("default") <= 1, f"{where}: {text}"
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("(default: minilm for texts, else efficientnet_lite0)") == 1
    assert "efficientnet_lite0) (default: None)" not in out
    assert "trials in the study (all workers) (default: 20)" in out


def test_fit_options_default_to_the_plan(capsys):
    args = build_parser().parse_args(["fit", "photos/"])
    assert [args.epochs, args.lr, args.batch_size, args.image_size, args.frozen_depth] == [None] * 5
    assert (args.pretrained, args.set, args.task) == (None, None, "auto")
    args = build_parser().parse_args(
        ["fit", "d", "--lr", "find", "--frozen-depth", "all", "--set", "tta=2", "--set", "a=b=c"]
    )
    assert (args.lr, args.frozen_depth, args.set) == ("find", "all", [("tta", "2"), ("a", "b=c")])
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("(default: planned from the data; the report shows the value)") == 5
