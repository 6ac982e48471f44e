"""The fit plan's rule for text classifiers (``BackboneSpec.plan`` of every text encoder).

With a few sentences per class, full fine-tuning of an encoder is fragile; SetFit's
contrastive stage (``freeze="contrastive"``: pairs of sentences of the same and of
different classes tune the encoder) followed by a head on the frozen, tuned encoder wins.
Measured with MiniLM-L6 (``docs/benchmarks.md``, *Data-aware defaults*; SST-2 sampled per
class with ``default_rng(seed)``, the seed also the training seed; SMS spam: the five
splits of ``bench_text.py``):

=======================  ==========================  =========================  ==========
data                     stage (20 rounds) + head    full fine-tuning (before)  per class
=======================  ==========================  =========================  ==========
SST-2, 8 per class       0.636 (3 seeds; ahead on    0.567                      8, balanced
                         each)
SST-2, 64 per class      **0.783** (0.775, 0.779,    0.760 (0.721, 0.776,       64, balanced
                         0.796; ahead on each)       0.784)
SMS spam, 50 messages    0.923 (5 splits)            **0.940**                  25 on
                                                                                average, 7
                                                                                spam
=======================  ==========================  =========================  ==========

Two things tell these apart: how many sentences there are per class on average (8 and 64
against 25), and whether the classes are balanced (the SMS split has 7 spam among 43 ham:
a stage whose positive pairs of the rare class come from 7 sentences lost to fine-tuning,
which already separates the classes with a few dozen examples of the large one). So:

=================================  ====================================================
data (a classifier, every class    decision
>= 2 sentences, no policy chosen,
no depth but ``"all"``)
=================================  ====================================================
n / classes <= 16                  ``freeze="contrastive"`` (then the head alone:
                                   ``frozen_depth="all"``), ``lr=5e-4`` (head at 1e-2),
n / classes <= 64 and balanced:    ``max_epochs=100`` (cheap: cached features),
smallest class >= half of          ``freeze__pair_iterations`` = 2560 // n in [1, 20]
n / classes                        (SetFit's 20 up to 128 sentences)
anything else                      the text defaults (``TEXT_DEFAULTS``): full
                                   fine-tuning
=================================  ====================================================

Unmeasured: imbalanced sets between 8 and 25 per class, balanced sets between 64 and 100
per class (SMS at 200, 100 per class on average, fine-tunes: 0.968), more than two classes.
The pair rounds fall above 128 sentences so that the stage costs about what the measured
one did (SST-2 at 64 per class: 5,120 pairs, 276 s against 231 s for fine-tuning, 2 CPU
cores); at 64 per class 20 rounds beat 5 (0.775 against 0.732, seed 0).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BALANCED_FEW_SHOT_PER_CLASS",
    "FEW_SHOT_PER_CLASS",
    "HEAD_EPOCHS",
    "HEAD_LR",
    "PAIR_BUDGET",
    "text_rule",
]

#: Sentences per class (on average) up to which a classifier gets the contrastive stage.
FEW_SHOT_PER_CLASS = 16
#: ... and up to which a balanced one does (smallest class >= half the average).
BALANCED_FEW_SHOT_PER_CLASS = 64
#: The smallest class over the average per class, at least, for "balanced".
BALANCED_SHARE = 0.5
#: Encoder rate of the head stage (the head trains at ``head_lr_factor`` times it: 1e-2).
HEAD_LR = 5e-4
#: Head epochs after the stage (the frozen encoder's features are cached).
HEAD_EPOCHS = 100
#: ``pair_iterations * n`` stays at most this (SetFit's 20 rounds up to 128 sentences).
PAIR_BUDGET = 2560
MAX_PAIR_ITERATIONS = 20  # SetFit's num_iterations


def pair_iterations(n_samples: int) -> int:
    """Rounds of pairs for ``n_samples`` training sentences: ``PAIR_BUDGET // n`` in [1, 20]."""
    return int(min(MAX_PAIR_ITERATIONS, max(1, PAIR_BUDGET // max(1, n_samples))))


def text_rule(profile: Any, defaults: dict) -> dict[str, tuple[Any, str]]:
    """The rule of text encoders (module docstring's table)."""
    if (
        defaults.get("freeze") is not None  # the user (or the backbone) chose a policy
        or defaults.get("frozen_depth") not in (None, "all")  # the user chose fine-tuning
        or not profile.n_classes  # regression
        or profile.multilabel
        or profile.min_class_count is None
        or profile.min_class_count < 2  # a class of 1 has no pair of its own class
    ):
        return {}
    per_class = profile.n_samples / profile.n_classes
    balanced = profile.min_class_count >= BALANCED_SHARE * per_class
    if per_class <= FEW_SHOT_PER_CLASS:
        why = f"{per_class:.3g} sentences per class <= {FEW_SHOT_PER_CLASS}"
    elif per_class <= BALANCED_FEW_SHOT_PER_CLASS and balanced:
        why = (
            f"{per_class:.3g} sentences per class <= {BALANCED_FEW_SHOT_PER_CLASS}, "
            f"balanced (smallest class {profile.min_class_count})"
        )
    else:
        return {}
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
