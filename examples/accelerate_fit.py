"""Data-parallel fit through Hugging Face Accelerate (skorch's AccelerateMixin).
=============================================================================

Every process runs this same script; Accelerate starts them, shards the batches and
averages the gradients (DistributedDataParallel: NCCL on GPUs, gloo on CPUs):

    accelerate launch --multi_gpu --num_processes 4 examples/accelerate_fit.py  # 4 GPUs
    python examples/accelerate_fit.py                                           # 1 process
    # 2 CPU processes (gloo): torchrun starts them, ACCELERATE_USE_CPU keeps them off GPUs
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 examples/accelerate_fit.py

Several machines: ``accelerate config`` on each (or ``--num_machines``, ``--machine_rank``,
``--main_process_ip``), then the same ``accelerate launch`` line on every machine.

``--out DIR`` writes each process's final weights (``rank<i>.pt``) and predictions there,
which ``tests/test_accelerated.py`` compares between processes and with one process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration

from skft.data.datasets import load_digits_images
from skft.training.accelerated import AcceleratedClassifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="smallcnn")
    parser.add_argument("--n", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    X, y = load_digits_images(n_class=3)
    X, y = X[: args.n], y[: args.n]
    tabular = args.backbone == "mlp"
    if tabular:
        X = X.reshape(len(X), -1)
    # split_batches: each batch of batch_size samples is shared out between the processes,
    # so the optimisation is the one-process one whatever the number of processes
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True))
    clf = AcceleratedClassifier(
        args.backbone,
        accelerator=accelerator,
        pretrained=False,
        augment="none" if tabular else "basic",
        augment_strength=0.0 if tabular else 0.3,
        image_size=None if tabular else 16,
        max_epochs=args.epochs,
        batch_size=32,
        lr=1e-2,
        iterator_train__shuffle=False,  # the same batches whatever the number of processes
        random_state=0,
    )
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    accuracy = (proba.argmax(1) == y).mean()
    accelerator.print(f"{accelerator.num_processes} process(es): train accuracy {accuracy:.3f}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rank = accelerator.process_index
        torch.save(clf.module_.state_dict(), args.out / f"rank{rank}.pt")
        np.save(args.out / f"proba{rank}.npy", proba)
        state = accelerator.state
        setup = {"processes": state.num_processes, "type": str(state.distributed_type)}
        setup["backend"] = state.backend
        (args.out / f"setup{rank}.json").write_text(json.dumps(setup))
    # leave the process group before exit: torch aborts a process torn down inside one
    # ("terminate called without an active exception") when the machine is busy
    accelerator.wait_for_everyone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
