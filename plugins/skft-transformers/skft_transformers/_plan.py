"""The fit plan's rule for text classifiers (``BackboneSpec.plan`` of every text encoder).

With a few sentences per class, full fine-tuning of an encoder is fragile; SetFit's
contrastive stage (``freeze="contrastive"``: pairs of sentences of the same and of
different classes tune the encoder) followed by a head on the frozen, tuned encoder wins.
Measured with MiniLM-L6 (``docs/benchmarks.md``, *Few-shot text* and *Data-aware
defaults*): on SST-2 at 8 sentences per class (16 in all) the stage + head gave 0.636
against full fine-tuning's 0.567 (mean of 3 seeds, ahead on each); at 64 per class 0.732
against 0.721 (one seed, inside the seed-to-seed spread). On SMS spam at 50 messages
(about 7 spam and 43 ham) it lost: macro F1 0.927 against 0.940 (mean of five splits;
ahead on one). What tells the two apart here is how many sentences there are per class
on average (8 against 25), not the smallest class (8 against 7): with a few dozen
examples of the large class, fine-tuning already separates them. So the rule picks the
stage when there are at most :data:`FEW_SHOT_PER_CLASS` sentences per class on average
(and at least 2 in every class), and the declared text defaults (full fine-tuning)
otherwise. Between 8 and 25 per class the threshold is not measured.

=================================  ====================================================
data                               decision
=================================  ====================================================
classes, n / classes <= 16,        ``freeze="contrastive"`` (then the head alone:
every class >= 2, no policy        ``frozen_depth="all"``), ``lr=5e-4`` (head at 1e-2),
chosen, no depth but ``"all"``     ``max_epochs=100`` (cheap: cached features),
                                   ``freeze__pair_iterations`` = 640 // n in [1, 20]
anything else                      the text defaults (``TEXT_DEFAULTS``)
=================================  ====================================================

The pair rounds fall as the data grows so that the stage stays near SetFit's measured
cost: 20 rounds of 16 sentences (640 pairs) at 8 per class, 5 rounds at 64 per class.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FEW_SHOT_PER_CLASS", "HEAD_EPOCHS", "HEAD_LR", "PAIR_BUDGET", "text_rule"]

#: Sentences per class (on average) up to which a classifier gets the contrastive stage.
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
    if per_class > FEW_SHOT_PER_CLASS:
        return {}
    why = f"{per_class:.3g} sentences per class <= {FEW_SHOT_PER_CLASS}"
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
