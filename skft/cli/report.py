"""What ``skft tune`` prints and writes: progress lines, report.json/report.txt, plots.

Trials are numbered from 1 everywhere a person reads them (progress lines,
report.txt, report.json's ``trial`` and ``best_trial``, the history plot);
report.json also keeps Optuna's own 0-based ``trial.number`` as
``optuna_trial_number``, to look a trial up in the study.
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "Progress",
    "history_figure",
    "load_reporting_skips",
    "redact",
    "trial_rows",
    "write_plots",
    "write_report",
]


def load_reporting_skips(
    source: str,
    image_size: int | None,
    labelled: bool,
    limit: int | None,
    text_column: str = "text",
    label_column: str = "label",
    return_paths: bool = False,
):
    """:func:`skft.data.datasets.load_data`, its warnings (skipped files) printed to stderr.

    A ``.csv``/``.tsv`` file or a folder of ``.txt`` files holds texts
    (:func:`skft.data.text.load_texts`). ``return_paths``: a folder's images as paths.
    """
    from ..data.datasets import load_data
    from ..data.text import is_text_source, load_texts

    if is_text_source(source):
        return load_texts(source, text_column, label_column, labelled=labelled, limit=limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data(
            source, image_size, labelled=labelled, limit=limit, return_paths=return_paths
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr, flush=True)
    return data


def redact(url: Any) -> Any:
    """A storage URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url) if isinstance(url, str) else url


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


class Progress:
    """Optuna callback: one line per finished trial, numbered from 1."""

    def __init__(self, total: int | None) -> None:
        self.total, self.t0 = total, time.perf_counter()

    def __call__(self, study, trial) -> None:
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        epochs = trial.user_attrs.get("epochs_trained", "?")
        dur = trial.duration.total_seconds() if trial.duration else 0.0
        of = f"/{self.total}" if self.total else ""
        print(
            f"trial {trial.number + 1:>3}{of}  {trial.state.name:<8} score {value}  best {best}  "
            f"epochs {epochs}  {dur:6.1f} s  {_params(trial.params)}",
            flush=True,
        )


def trial_rows(study) -> list[dict[str, Any]]:
    """One dict per trial of the study, for report.json."""
    return [
        {
            "trial": t.number + 1,
            "optuna_trial_number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "epochs_trained": t.user_attrs.get("epochs_trained"),
            "split_test_scores": t.user_attrs.get("split_test_scores"),
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]


def write_report(out: Path, report: dict[str, Any]) -> str:
    """Write report.json and report.txt under ``out``; return the text."""
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    metric = f"CV {report['scoring']}"
    lines = [
        f"study {report['study_name']} ({report['storage']}): {report['n_complete']} complete, "
        f"{report['n_pruned']} pruned, {report['n_failed']} failed, "
        f"{report['wall_seconds']:.1f} s",
        f"best {metric} {report['best_score']:.4f} (trial {report['best_trial']}): "
        + _params(report["best_params"]),
        "",
        f"{'trial':>5}  {'state':<8}  {'score':>7}  {'epochs':>6}  params",
    ]
    for r in report["trials"]:
        score = "-" if r["value"] is None else f"{r['value']:.4f}"
        lines.append(
            f"{r['trial']:>5}  {r['state']:<8}  {score:>7}  {r['epochs_trained'] or '-':>6}  "
            + _params(r["params"])
        )
    text = "\n".join(lines) + "\n"
    (out / "report.txt").write_text(text)
    return text


# --------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------


def history_figure(study, metric: str):
    """Score of every trial (x: trial from 1) and the best so far; y labelled ``metric``."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(8, 5))
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if done:
        x = np.array([t.number + 1 for t in done])
        y = np.array([t.value for t in done])
        best = np.maximum.accumulate(y) if _maximizes(study) else np.minimum.accumulate(y)
        ax.scatter(x, y, label="complete", zorder=3)
        ax.step(x, best, where="post", color="C3", label="best so far")
    if pruned:
        ax.scatter(
            [t.number + 1 for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            marker="x",
            color="grey",
            label="pruned (last epoch's score)",
            zorder=3,
        )
    if not done and not pruned:
        ax.text(0.5, 0.5, "no finished trials", ha="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"Optimisation history ({len(done)} complete, {len(pruned)} pruned)")
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    return fig


def _maximizes(study) -> bool:
    from optuna.study import StudyDirection

    return study.direction == StudyDirection.MAXIMIZE


def _importances_figure(study, metric: str):
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib module experimental
            ax = ovm.plot_param_importances(study, target_name=metric)
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    except Exception as exc:  # noqa: BLE001 - e.g. too few complete trials
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"importances: not available\n({exc})", ha="center", wrap=True)
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def write_plots(study, out: Path, metric: str) -> None:
    """history.png and importances.png under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, make in (("history", history_figure), ("importances", _importances_figure)):
        fig = make(study, metric)
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
