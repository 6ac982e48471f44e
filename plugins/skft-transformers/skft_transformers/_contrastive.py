"""The contrastive stage of SetFit: sentence pairs train the encoder before the head.

``freeze="contrastive"`` is a freezing policy that does two things:

1. before the first epoch (skft's ``before_epochs`` hook), it trains the encoder on pairs of
   training sentences, labelled 1 when both have the same class and 0 otherwise, with a
   ``sentence-transformers`` loss on the pooled embeddings (SetFit, Tunstall et al. 2022:
   ``CosineSimilarityLoss``, AdamW at 2e-5, 20 pair iterations, one epoch);
2. then it freezes layer groups over the epochs as the policy ``then`` does (``"depth"``:
   the first ``frozen_depth`` groups), while the head (and the unfrozen groups) train as
   usual. ``frozen_depth="all"`` is SetFit's recipe: a head on the tuned, frozen encoder.

Pairs (:func:`sentence_pairs`): every iteration pairs every sentence with one other
sentence of its class and one of another class, both drawn at random, so there are as
many positive as negative pairs (``2 * pair_iterations * n_sentences`` in all). The draws
follow torch's RNG, which skft seeds from ``random_state``: one seed, one set of pairs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from skft.plugin_api import (
    FreezePolicy,
    FreezeState,
    Integral,
    Interval,
    Real,
    StrOptions,
    check_parameters,
    freezers,
)

__all__ = ["LOSSES", "ContrastiveFreezer", "contrastive_stage", "sentence_pairs"]

#: ``freeze__loss`` names: sentence-transformers losses on (sentence, sentence, 1 or 0) pairs.
LOSSES = {
    "cosine": "CosineSimilarityLoss",  # SetFit's default
    "cosent": "CoSENTLoss",
    "contrastive": "ContrastiveLoss",
    "online_contrastive": "OnlineContrastiveLoss",
}


class ContrastiveFreezer(FreezePolicy):
    """SetFit's contrastive stage on the encoder, then the freezing of policy ``then``.

    Parameters
    ----------
    pair_iterations : int >= 0
        Rounds of pairs: each round pairs every training sentence with one sentence of
        its class and one of another class (SetFit's ``num_iterations``, default 20).
        0 switches the stage off (the policy is then ``then``), so a search can tune it.
    epochs : int >= 1
        Passes over the pairs (default 1).
    lr : float > 0
        The encoder's rate during the stage (AdamW, weight decay 0.01, linear warm-up
        over ``warmup`` of the steps then linear decay; default 2e-5, SetFit's).
    batch_size : int >= 1
        Pairs per step (default 16).
    loss : {"cosine", "cosent", "contrastive", "online_contrastive"}
        The sentence-transformers loss (:data:`LOSSES`; default ``"cosine"``, SetFit's).
    warmup : float in [0, 1)
        Share of the stage's steps with a rising rate (default 0.1).
    then : str
        The registered freezing policy that governs the epochs after the stage
        (default ``"depth"``), built with ``bn`` and ``lr_decay``.
    bn, lr_decay
        Passed to ``then`` (see the ``depth`` policy).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "pair_iterations": [Interval(Integral, 0, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "warmup": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        pair_iterations: int = 20,
        epochs: int = 1,
        lr: float = 2e-5,
        batch_size: int = 16,
        loss: str = "cosine",
        warmup: float = 0.1,
        then: str = "depth",
        bn: str = "eval",
        lr_decay: float = 1.0,
    ) -> None:
        values = {
            "pair_iterations": pair_iterations,
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "loss": loss,
            "warmup": warmup,
        }
        check_parameters(self._parameter_constraints, values, "freeze__")
        self.pair_iterations, self.epochs = int(pair_iterations), int(epochs)
        self.lr, self.batch_size = float(lr), int(batch_size)
        self.loss, self.warmup = loss, float(warmup)
        if then in ("contrastive", "setfit"):
            raise ValueError("freeze__then names the policy after the stage; not 'contrastive'")
        self.then = then
        self.after = freezers().get(then)(bn=bn, lr_decay=lr_decay)
        #: what the last stage did (pairs, steps, losses, seconds); empty before a fit
        self.stage_log: dict[str, Any] = {}

    def __call__(self, groups: Sequence[str], frozen_depth: int, epoch: int) -> FreezeState:
        return self.after(groups, frozen_depth, epoch)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pair_iterations={self.pair_iterations}, "
            f"epochs={self.epochs}, lr={self.lr}, batch_size={self.batch_size}, "
            f"loss={self.loss!r}, warmup={self.warmup}, then={self.after!r})"
        )


def sentence_pairs(
    labels: Any, iterations: int, rng: np.random.Generator, names: Sequence[Any] | None = None
) -> np.ndarray:
    """Balanced pairs ``(i, j, same)``: each round pairs every sample with one other sample of
    its class (``same=1``) and one of another class (``same=0``), drawn with ``rng``.

    Returns an int64 array of shape ``(2 * iterations * n_samples, 3)`` in random order.
    Raises ``ValueError`` for fewer than 2 classes, or for a class with fewer than 2
    samples (it would have no pair of its own class); ``names`` (the class of each code,
    in sorted order) name the classes in the message.
    """
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        found = classes.tolist()[0] if len(classes) else None
        found = repr(found if names is None or found is None else np.asarray(names)[found].item())
        raise ValueError(
            "freeze='contrastive' pairs sentences of the same and of different classes: y "
            f"needs at least 2 classes, got 1 ({found}); use freeze='depth'"
        )
    members = [np.flatnonzero(codes == c) for c in range(len(classes))]
    names = classes.tolist() if names is None else [np.asarray(names)[c].item() for c in classes]
    lone = [repr(name) for name, m in zip(names, members) if len(m) < 2]
    if lone:
        raise ValueError(
            "freeze='contrastive' pairs every sentence with another of its class: each class "
            f"needs at least 2 training samples; {len(lone)} of {len(classes)} classes have 1 "
            f"({', '.join(lone[:5])}{', ...' if len(lone) > 5 else ''}); add examples or use "
            "freeze='depth'"
        )
    others = [np.flatnonzero(codes != c) for c in range(len(classes))]
    pairs = []
    for _ in range(iterations):
        for same, other in zip(members, others):
            # another sample of the class, uniformly: never the sample itself
            partner = same[rng.integers(len(same) - 1, size=len(same))]
            partner = np.where(partner == same, same[-1], partner)
            pairs.append(np.stack([same, partner, np.ones_like(same)], axis=1))
            partner = other[rng.integers(len(other), size=len(same))]
            pairs.append(np.stack([same, partner, np.zeros_like(same)], axis=1))
    out = np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 3), np.int64)
    return out[rng.permutation(len(out))]


def _training_rows(estimator: Any, X: Any, y: Any) -> tuple[Any, Any]:
    """The rows the epochs train on: a validation split held out by the fit stays unseen."""
    import torch

    train, valid = estimator.get_split_datasets(X, y)
    if valid is None:
        return X, y
    indices = getattr(train, "indices", None)
    if indices is None and len(train) == len(X):  # validation data of its own (predefined)
        return X, y
    if indices is None:
        raise ValueError(
            "freeze='contrastive' cannot tell which samples the validation split holds out "
            f"(train_split gave a {type(train).__name__}); use a skorch ValidSplit or "
            "early_stopping, or train_split=None"
        )
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    return X[idx], y[idx]


def _encoder(module: Any):
    """The estimator's groups and neck as a sentence-transformers model: features in,
    ``{"sentence_embedding": ...}`` out."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.groups, self.neck = module.groups, module.neck

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            x = torch.stack([features["input_ids"], features["attention_mask"]], dim=1)
            x = module.preprocess(x)
            for group in self.groups:
                x = group(x)
            return {**features, "sentence_embedding": self.neck(x)}

    return Encoder()


#: With ``verbose``, a stage epoch longer than this many seconds gets a per-step bar.
BAR_AFTER = 5.0


def _progress_bar(total: int, done: int) -> Any:
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="step", leave=False, file=sys.stderr)


def _loss(name: str, model: Any):
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6 kept them at the top
        from sentence_transformers import losses

    return getattr(losses, LOSSES[name])(model)


def contrastive_stage(estimator: Any, X: Any, y: Any) -> None:
    """Train ``estimator.module_``'s encoder on sentence pairs (``freeze="contrastive"``).

    Called through skft's ``before_epochs`` hook with the adapted token tensor ``X`` and
    the class indices ``y``. Every layer group trains during the stage, whatever
    ``frozen_depth`` says; the freezing of the epochs is restored afterwards.
    """
    import torch

    policy = estimator.freeze_policy_
    kind, name = estimator.input_kind_.name, estimator.backbone_spec_.name
    if kind != "text":
        raise ValueError(
            f"freeze='contrastive' trains a text encoder on sentence pairs; backbone {name!r} "
            f"takes {kind} input: use freeze='depth' (or 'lp_ft', 'gradual')"
        )
    if y.dtype.is_floating_point:
        raise ValueError(
            "freeze='contrastive' pairs sentences by class: it needs FineTunedClassifier "
            "(class labels), not a regressor"
        )
    if policy.pair_iterations == 0:
        return
    X, y = _training_rows(estimator, X, y)
    seed = int(torch.randint(2**62, (1,)))  # torch's RNG: skft seeds it from random_state
    rng = np.random.default_rng(seed)
    names = getattr(estimator, "classes_", None)  # the user's labels, for the messages
    pairs = sentence_pairs(y.cpu().numpy(), policy.pair_iterations, rng, names)
    module = getattr(estimator.module_, "module", estimator.module_)  # inside DDP
    device = torch.device(estimator.device)
    model = _encoder(module)
    loss_fn = _loss(policy.loss, model)
    params = [p for group in module.groups for p in group.parameters()]
    steps_per_epoch = math.ceil(len(pairs) / policy.batch_size)
    total = steps_per_epoch * policy.epochs
    warm = int(policy.warmup * total)
    optimizer = torch.optim.AdamW(params, lr=policy.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)),
    )
    for group in module.groups:
        group.requires_grad_(True)
        group.train()
    log = {"pairs": len(pairs), "positive": int(pairs[:, 2].sum()), "steps": total, "loss": []}
    start = time.perf_counter()
    try:
        for epoch in range(policy.epochs):
            order = pairs if epoch == 0 else pairs[rng.permutation(len(pairs))]
            t0, losses, bar = time.perf_counter(), [], None
            for s in range(0, len(order), policy.batch_size):
                if bar is None and estimator.verbose and time.perf_counter() - t0 > BAR_AFTER:
                    bar = _progress_bar(steps_per_epoch, s // policy.batch_size)
                elif bar is not None:
                    bar.update(1)
                a, b, same = (torch.as_tensor(c) for c in order[s : s + policy.batch_size].T)
                # each sentence of the step through the encoder once (few-shot steps repeat
                # sentences: 16 pairs of 16 sentences), then the loss on the two columns
                rows, where = torch.unique(torch.cat([a, b]), return_inverse=True)
                features = {"input_ids": X[rows, 0], "attention_mask": X[rows, 1]}
                embedded = model({k: v.to(device) for k, v in features.items()})
                columns = embedded["sentence_embedding"][where].split(len(a))
                loss = loss_fn.compute_loss_from_embeddings(list(columns), same.float().to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
            if bar is not None:
                bar.close()
            log["loss"].append(float(np.mean(losses)))
            if estimator.verbose:
                print(
                    f"contrastive {epoch + 1}/{policy.epochs}  {len(pairs)} pairs  "
                    f"{policy.loss} loss {log['loss'][-1]:.4f}  {time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
    finally:
        for p in params:
            p.grad = None
        module.apply_freeze_state(estimator.freeze_state_)  # the epochs' freezing again
    log["seconds"] = time.perf_counter() - start
    policy.stage_log = log
