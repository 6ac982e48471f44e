"""The ``skft`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="fine-tune vs from scratch vs linear probe on digits "
        "(offline, a few minutes on 2 CPU cores)",
    )
    demo.add_argument("--backbone", default="efficientnet_lite0")
    demo.add_argument("--n-train", type=int, default=200)
    demo.add_argument("--n-test", type=int, default=500)
    demo.add_argument("--epochs", type=int, default=10)
    demo.add_argument("--image-size", type=int, default=64)
    demo.add_argument("--out", default="skft-demo", help="folder for results and the plot")
    demo.add_argument("--seed", type=int, default=0)

    sub.add_parser("plugins", help="list registered backbones, freezers and augmenters")

    tune = sub.add_parser(
        "tune",
        help="Optuna search (CV, pruning, shared storages); writes the refitted model, "
        "a report and plots",
    )
    tune.add_argument(
        "--data",
        default="digits",
        help="'digits' (built in), an .npz with X and y, or a folder with one sub-folder "
        "of images per class",
    )
    tune.add_argument("--backbone", default="efficientnet_lite0")
    tune.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: pretrained when the backbone has weights",
    )
    tune.add_argument("--trials", type=int, default=20)
    tune.add_argument("--cv", type=int, default=3)
    tune.add_argument("--epochs", type=int, default=10)
    tune.add_argument("--image-size", type=int, default=64)
    tune.add_argument("--batch-size", type=int, default=32)
    tune.add_argument(
        "--storage",
        default=None,
        help="default in memory; sqlite:///s.db, postgresql://user:pw@host:5432/db, "
        "or a journal file (journal:///path/s.log)",
    )
    tune.add_argument("--study-name", default=None, help="workers with the same name share trials")
    tune.add_argument("--pruner", default="median", choices=["median", "none"])
    tune.add_argument("--timeout", type=float, default=None, help="seconds")
    tune.add_argument("--jobs", type=int, default=1, help="parallel trials in this process")
    tune.add_argument(
        "--heartbeat", type=int, default=30, help="heartbeat seconds (database storages)"
    )
    tune.add_argument("--limit", type=int, default=None, help="use at most this many samples")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--out", default="skft-tune", help="folder for the model, report and plots")

    predict = sub.add_parser("predict", help="predict with a saved model, writing CSV")
    predict.add_argument("model", help="a model.joblib written by skft tune")
    predict.add_argument("data", help="'digits', an .npz with X, or a folder of images")
    predict.add_argument("--out", default="predictions.csv")
    predict.add_argument("--limit", type=int, default=None)

    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo
        from .plugins import UnknownNameError

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
    elif args.command in ("tune", "predict"):
        from .cli_tune import run_predict, run_tune
        from .plugins import UnknownNameError

        try:
            return run_tune(args) if args.command == "tune" else run_predict(args)
        except (UnknownNameError, FileNotFoundError, ValueError) as exc:
            print(f"skft {args.command}: {exc}", file=sys.stderr)
            return 2
    elif args.command == "plugins":
        from .plugins import augmenters, backbones, freezers, pm

        for title, registry in (
            ("backbones", backbones()),
            ("freezers", freezers()),
            ("augmenters", augmenters()),
        ):
            print(f"{title}: {', '.join(registry.names())}")
        print(f"plugins: {', '.join(sorted(n for n, _ in pm.list_name_plugin()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
