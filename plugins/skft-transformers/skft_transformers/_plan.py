"""The fit plan's rule for text classifiers (``BackboneSpec.plan`` of every text encoder).

With a few sentences per class, full fine-tuning of an encoder is fragile; SetFit's
contrastive stage (``freeze="contrastive"``: pairs of sentences of the same and of
different classes tune the encoder) followed by a head on the frozen, tuned encoder wins.
Measured on SST-2 with MiniLM-L6 (``docs/benchmarks.md``, *Few-shot text*): at 8
sentences per class the stage + head gave 0.636 against the defaults' 0.567 (mean of 3
seeds, ahead on each); at 64 per class 0.732 against 0.721 (one seed, inside the
seed-to-seed spread). So the rule picks the stage up to :data:`FEW_SHOT_PER_CLASS`
sentences in the smallest class, and the declared text defaults (full fine-tuning)
above.

=================================  ====================================================
data                               decision
=================================  ====================================================
classes, 2 <= n/c <= 16, no        ``freeze="contrastive"`` (then the head alone:
policy chosen                      ``frozen_depth="all"``), ``lr=5e-4`` (head at 1e-2),
                                   ``max_epochs=100`` (cheap: cached features),
                                   ``freeze__pair_iterations`` = 640 // n in [1, 20]
anything else                      the text defaults (``TEXT_DEFAULTS``)
=================================  ====================================================

The pair rounds fall as the data grows so that the stage stays near SetFit's measured
cost: 20 rounds of 16 sentences (640 pairs) at 8 per class, 5 rounds at 64 per class.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FEW_SHOT_PER_CLASS", "HEAD_EPOCHS", "HEAD_LR", "PAIR_BUDGET", "text_rule"]

#: Sentences in the smallest class up to which a classifier gets the contrastive stage.
FEW_SHOT_PER_CLASS = 16
#: Encoder rate of the head stage (the head trains at ``head_lr_factor`` times it: 1e-2).
HEAD_LR = 5e-4
#: Head epochs after the stage (the frozen encoder's features are cached).
HEAD_EPOCHS = 100
#: ``pair_iterations * n`` stays near this (SetFit: 20 rounds of 16 sentences).
PAIR_BUDGET = 640
MAX_PAIR_ITERATIONS = 20  # SetFit's num_iterations


def pair_iterations(n_samples: int) -> int:
    """Rounds of pairs for ``n_samples`` training sentences: ``PAIR_BUDGET // n`` in [1, 20]."""
    return int(min(MAX_PAIR_ITERATIONS, max(1, PAIR_BUDGET // max(1, n_samples))))


def text_rule(profile: Any, defaults: dict) -> dict[str, tuple[Any, str]]:
    """The rule of text encoders (module docstring's table)."""
    few = profile.min_class_count
    if (
        defaults.get("freeze") is not None  # the user (or the backbone) chose a policy
        or profile.n_classes is None  # regression
        or profile.multilabel
        or few is None
        or not 2 <= few <= FEW_SHOT_PER_CLASS  # a class of 1 has no pair of its own class
    ):
        return {}
    why = f"{few} sentences in the smallest class <= {FEW_SHOT_PER_CLASS}"
    rounds = pair_iterations(profile.n_samples)
    return {
        "freeze": ("contrastive", f"{why}: SetFit's contrastive stage, then the head"),
        "freeze__pair_iterations": (
            rounds,
            f"{PAIR_BUDGET} // {profile.n_samples} sentences, in [1, {MAX_PAIR_ITERATIONS}]",
        ),
        "frozen_depth": ("all", "the head on the tuned, frozen encoder"),
        "lr": (HEAD_LR, "the head alone trains (at head_lr_factor x lr)"),
        "max_epochs": (HEAD_EPOCHS, "head epochs are cheap (cached features)"),
    }
