"""The skft command line: demo, plugins, fit, predict, evaluate, tune and dashboard."""

from __future__ import annotations

import argparse
import re
import sys

__all__ = ["DEMO_TIME", "build_parser", "main", "open_ended_names"]

#: how long ``skft demo`` takes with its defaults (measured; README says the same)
DEMO_TIME = "about a minute on 2 idle CPU cores"


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help text does not state its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default" in text.lower() else super()._get_help_string(action)


def _at_least(low: float, kind: type = int):
    """An argparse ``type``: ``kind`` values >= ``low``; others exit 2 with a message."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind.__name__}, got {text!r}") from None
        if not value >= low:  # NaN too
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


_POSITIVE = _at_least(1)


def _seconds(text: str) -> float:
    """An argparse ``type``: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def _learning_rate(text: str) -> float | str:
    """An argparse ``type``: a learning rate > 0, or ``find`` (the range test)."""
    if text == "find":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0 or 'find', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'find', got {text}")
    return value


def _depth(text: str) -> int | str:
    """An argparse ``type``: a frozen depth, an int >= 0 or ``all``."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int >= 0 or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 or 'all', got {text}")
    return value


def _assignment(text: str) -> tuple[str, str]:
    """An argparse ``type``: ``NAME=VALUE`` for an estimator parameter."""
    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
        raise argparse.ArgumentTypeError(
            f"must be NAME=VALUE (e.g. augment_strength=0.3), got {text!r}"
        )
    return name.strip(), value.strip()


def _data_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "data",
        help=f"{what}: a folder of images (one sub-folder per class: the labels), a "
        ".csv/.tsv of texts (and labels), a folder of .txt files (one sub-folder per class), "
        "an .npz with X (and y), or 'digits'",
    )
    parser.add_argument("--text-column", default="text", help="column of a .csv/.tsv: texts")
    parser.add_argument("--label-column", default="label", help="column of a .csv/.tsv: labels")
    parser.add_argument(
        "--limit", type=_POSITIVE, default=None, help="use at most this many samples (default: all)"
    )


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        help="a model.skft folder written by skft fit, skft tune or save(), the folder "
        "skft fit/tune wrote it into, or a deploy folder (Compressed.save(path, deploy=True))",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also read a pickled model (.joblib/.pkl): unpickling runs code from the file, "
        "so only for files you made or trust",
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="NAME",
        help="a class of your own (dotted name) that the model folder may name, besides those "
        "skft trusts (repeatable); only for folders you made or trust",
    )


def _add_fit(command) -> None:
    fit = command(
        "fit",
        "fine-tune one model with fixed settings; writes the model folder and a short report",
    )
    _data_argument(fit, "training data, labelled")
    fit.add_argument(
        "--backbone",
        default=None,
        help="backbone name (default: minilm for texts, else efficientnet_lite0)",
    )
    fit.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from pretrained weights (default: when the backbone has them)",
    )
    planned = "(default: planned from the data; the report shows the value)"
    fit.add_argument("--epochs", type=_POSITIVE, default=None, help=f"epochs {planned}")
    fit.add_argument(
        "--lr", type=_learning_rate, default=None, help=f"learning rate, or 'find' {planned}"
    )
    fit.add_argument("--batch-size", type=_POSITIVE, default=None, help=f"batch size {planned}")
    fit.add_argument(
        "--image-size", type=_at_least(8), default=None, help=f"images resized to this {planned}"
    )
    fit.add_argument(
        "--frozen-depth",
        type=_depth,
        default=None,
        help=f"layer groups frozen from the input side: 0 (fine-tune all), 1, ..., or 'all' "
        f"(linear probe) {planned}",
    )
    fit.add_argument(
        "--set",
        type=_assignment,
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="any other estimator parameter, e.g. --set augment_strength=0.3 --set "
        "lr_schedule=cosine (repeatable; VALUE read as a Python literal, else as text; "
        "default: none)",
    )
    fit.add_argument(
        "--task",
        choices=["auto", "classification", "regression"],
        default="auto",
        help="auto: regression when the labels are numbers that are not all integers",
    )
    fit.add_argument("--seed", type=int, default=0, help="training seed (random_state)")
    fit.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    fit.add_argument("--out", default="skft-fit", help="folder for model.skft and the report")


def build_parser() -> argparse.ArgumentParser:
    """The ``skft`` parser, every option with a help text (defaults shown)."""
    parser = argparse.ArgumentParser(prog="skft", description=__doc__, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_Formatter)

    demo = command(
        "demo",
        f"fine-tune vs from scratch vs linear probe on digits (offline, {DEMO_TIME})",
    )
    demo.add_argument("--backbone", default="efficientnet_lite0", help="backbone name")
    demo.add_argument(
        "--text",
        action="store_true",
        help="the text demo instead: fine-tuned MiniLM vs linear probe vs TF-IDF + LR on 1,000 "
        "shipped SMS messages (needs the skft-transformers plugin)",
    )
    demo.add_argument("--n-train", type=_POSITIVE, default=200, help="training images")
    demo.add_argument("--n-test", type=_POSITIVE, default=500, help="held-out test images")
    demo.add_argument("--epochs", type=_POSITIVE, default=10, help="epochs per run")
    demo.add_argument(
        "--image-size", type=_POSITIVE, default=64, help="8x8 digits upscaled to this"
    )
    demo.add_argument("--out", default="skft-demo", help="folder for results and the plot")
    demo.add_argument("--seed", type=int, default=0, help="split and training seed")

    command("plugins", "list registered backbones, freezers and augmenters")
    _add_fit(command)

    tune = command(
        "tune",
        "Optuna search (CV, pruning, shared storages); writes the refitted model, "
        "a report and plots",
    )
    tune.add_argument(
        "--data",
        default="digits",
        help="'digits' (built in), an .npz with X and y, a folder with one sub-folder "
        "of images per class, a .csv/.tsv file of texts and labels (see --text-column), or "
        "a folder with one sub-folder of .txt files (one text each) per class",
    )
    tune.add_argument(
        "--backbone",
        default=None,
        help="backbone name (default: minilm for texts, else efficientnet_lite0)",
    )
    tune.add_argument("--text-column", default="text", help="column of a .csv/.tsv with the texts")
    tune.add_argument("--label-column", default="label", help="column of a .csv/.tsv: labels")
    tune.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from pretrained weights (default: when the backbone has them)",
    )
    tune.add_argument(
        "--trials", type=_POSITIVE, default=20, help="trials in the study (all workers)"
    )
    tune.add_argument("--cv", type=_at_least(2), default=3, help="cross-validation folds per trial")
    tune.add_argument(
        "--epochs",
        type=_POSITIVE,
        default=None,
        help="epochs per fold (default: the backbone's, 10)",
    )
    tune.add_argument("--image-size", type=_POSITIVE, default=64, help="images resized to this")
    tune.add_argument(
        "--batch-size", type=_POSITIVE, default=None, help="batch size (default: the backbone's)"
    )
    tune.add_argument(
        "--storage",
        default=None,
        help="Optuna storage (default: in memory): sqlite:///s.db, "
        "postgresql://user:pw@host:5432/db, or journal:///path/s.log",
    )
    tune.add_argument("--study-name", default=None, help="workers with the same name share trials")
    tune.add_argument("--pruner", default="median", choices=["median", "none"], help="trial pruner")
    tune.add_argument("--timeout", type=_seconds, default=None, help="stop after this many seconds")
    tune.add_argument("--jobs", type=_POSITIVE, default=1, help="parallel trials in this process")
    tune.add_argument(
        "--heartbeat", type=_POSITIVE, default=30, help="heartbeat seconds (database storages)"
    )
    tune.add_argument("--limit", type=_POSITIVE, default=None, help="use at most this many samples")
    tune.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    tune.add_argument("--out", default="skft-tune", help="folder for the model, report and plots")

    predict = command(
        "predict",
        "predict with a saved model, writing CSV; scored when the data has labels",
    )
    _model_arguments(predict)
    _data_argument(predict, "data to predict, scored when labelled")
    predict.add_argument("--out", default="predictions.csv", help="CSV file to write")
    predict.add_argument(
        "--plot",
        default=None,
        help="confusion-matrix PNG, when the data has labels (default: beside --out, "
        "named <out>_confusion.png)",
    )

    evaluate = command(
        "evaluate",
        "score a saved model on labelled data: accuracy, macro F1, recall per class and "
        "the confusion matrix (regression: MSE, MAE, R²)",
    )
    _model_arguments(evaluate)
    _data_argument(evaluate, "labelled data")
    evaluate.add_argument(
        "--plot", default=None, help="write the confusion matrix as this PNG (default: no plot)"
    )
    evaluate.add_argument(
        "--json", default=None, help="write the scores to this JSON file (default: not written)"
    )
    dashboard = command(
        "dashboard",
        "Optuna's dashboard (trials, per-epoch scores, importances) on the storage of a "
        "running or finished search, in the browser",
    )
    dashboard.add_argument(
        "storage",
        help="the storage skft tune --storage or OptunaSearch(storage=...) writes: "
        "sqlite:///s.db (or a path ending in .db), journal:///path/s.log (or a path "
        "ending in .log), postgresql://user:pw@host:5432/db",
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on; the dashboard has no login and can delete studies, so "
        "reach it from elsewhere through an SSH tunnel rather than 0.0.0.0",
    )
    dashboard.add_argument("--port", type=_at_least(1), default=8080, help="port to serve on")
    return parser


def open_ended_names() -> list[str]:
    """Backbone name patterns that plugins resolve on demand (``register_backbone_prefixes``).

    Each registered prefix as ``prefix<description>`` (skft-timm:
    ``timm:<any timm model name>``), with the distribution that installed its
    resolver when known, else the resolver's module.
    """
    from importlib.metadata import packages_distributions

    from ..plugins import backbone_prefixes

    dists = packages_distributions()
    lines = []
    for prefix, entry in sorted(backbone_prefixes().items()):
        module = getattr(entry.resolve, "__module__", None) or "?"
        source = ", ".join(dict.fromkeys(dists.get(module.split(".")[0], []))) or module
        described = entry.description or f"<any {prefix.rstrip(':@')} model name>"
        lines.append(f"{prefix}{described} ({source})")
    return lines


def _list_plugins() -> None:
    from ..plugins import augmenters, backbones, broken_plugins, freezers, input_kinds, pm

    print(f"backbones: {', '.join(backbones().names())}")
    for line in open_ended_names():
        print(f"  also: {line}")
    for title, registry in (
        ("freezers", freezers()),
        ("augmenters", augmenters()),
        ("input kinds", input_kinds()),
    ):
        print(f"{title}: {', '.join(registry.names())}")
    print(f"plugins: {', '.join(sorted(n for n, _ in pm.list_name_plugin()))}")
    for name, reason in sorted(broken_plugins().items()):
        print(f"broken: {name} ({reason})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "plugins":
        _list_plugins()
        return 0
    from ..plugins import UnknownNameError

    if args.command == "demo" and args.text:
        from ..plugins import demos

        try:
            run = demos().get("text")  # a plugin's (skft-transformers registers it)
        except UnknownNameError:
            print("skft demo --text: install plugins/skft-transformers", file=sys.stderr)
            return 2
        run(args.n_train, None if args.out == "skft-demo" else args.out, args.seed)
        return 0
    if args.command == "demo":
        from .demo import run_demo

        try:
            run_demo(
                args.backbone,
                args.n_train,
                args.n_test,
                args.epochs,
                args.image_size,
                args.out,
                args.seed,
            )
        except UnknownNameError as exc:
            hint = (
                " (install the timm plugin: pip install -e plugins/skft-timm)"
                if args.backbone == "efficientnet_lite0"
                else ""
            )
            print(f"skft demo: {exc}{hint}", file=sys.stderr)
            return 2
        return 0
    if args.command == "tune":
        from .tune import run_tune as run
    elif args.command == "fit":
        from .fit import run_fit as run
    elif args.command == "dashboard":
        from .dashboard import run_dashboard as run
    elif args.command == "evaluate":
        from .evaluate import run_evaluate as run
    else:
        from .predict import run_predict as run
    try:
        return run(args)
    except (UnknownNameError, FileNotFoundError, ValueError) as exc:
        print(f"skft {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
