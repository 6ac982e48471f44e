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
