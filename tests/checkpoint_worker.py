"""A fit with ``checkpoint=`` in its own process, for the kill-and-resume test.

    python checkpoint_worker.py CHECKPOINT_DIR WEIGHTS_OUT [--hang-at EPOCH MARKER]

``--hang-at`` writes MARKER after the first batch of the epoch after EPOCH and then waits, so the
test can SIGKILL the process in mid-epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from skorch.callbacks import Callback

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images


class HangInEpoch(Callback):
    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, marker

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch + 1:  # in the epoch after it
            Path(self.marker).write_text("hanging")
            time.sleep(120)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--hang-at", nargs=2, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    X, y = load_digits_images(n_class=3)
    callbacks = [HangInEpoch(int(args.hang_at[0]), args.hang_at[1])] if args.hang_at else []
    clf = FineTunedClassifier(
        "smallcnn",
        pretrained=False,
        image_size=16,
        max_epochs=6,
        batch_size=16,
        augment="basic",
        augment_strength=0.5,
        random_state=0,
        checkpoint=args.checkpoint,
        callbacks=callbacks,
    )
    clf.fit(X[:60], y[:60])
    torch.save({"state": clf.module_.state_dict(), "epochs": len(clf.history)}, args.out)


if __name__ == "__main__":
    main()
