"""scikit-learn searches through joblib's Dask backend, on a LocalCluster of 2 worker processes.

One cluster for the module (starting one takes seconds); the test that kills a worker waits
for the nanny to bring it back before the next test uses the cluster.
"""

from __future__ import annotations

import logging
import os
import platform

import numpy as np
import pytest
from dask_helpers import KillOnce, Locked, NoPickle, RecordFit, freed_memory_kept, read_records
from joblib import parallel_backend
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid, cross_val_score
from skorch.callbacks import EpochScoring

from skft import FineTunedClassifier

distributed = pytest.importorskip("distributed")

GRID = {"lr": [1e-3, 1e-2], "frozen_depth": [0, 1]}


@pytest.fixture(scope="module")
def cluster():
    """A Dask client on a LocalCluster: 2 worker processes (with nannies), 1 thread each."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture
def client(cluster):
    cluster.wait_for_workers(2, timeout=120)
    return cluster


def worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def test_workers_keep_freed_memory_despite_the_nannys_trim_threshold(client):
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (its own default, not
    # the user's): skft's thresholds are set all the same, as in any CPU process
    answers = client.run(freed_memory_kept).values()
    assert all(answers) and len(answers) == 2
    for trim, kept in answers:
        assert trim == "65536"
        assert kept is (platform.libc_ver()[0] == "glibc")


@pytest.fixture(scope="module")
def serial(digits, fast_settings):
    """The grid searched in this process (``n_jobs=1``): what the cluster must reproduce."""
    X, y = digits
    return GridSearchCV(FineTunedClassifier(**fast_settings), GRID, cv=2, n_jobs=1).fit(X, y)


def same_scores(search, reference) -> None:
    assert search.best_params_ == reference.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], reference.cv_results_[key], atol=1e-6)


def test_grid_search_on_dask_matches_n_jobs_1(client, serial, digits, fast, tmp_path):
    X, y = digits
    clf = FineTunedClassifier(**fast, callbacks=[("record", RecordFit(str(tmp_path)))])
    with parallel_backend("dask", client=client):
        search = GridSearchCV(clf, GRID, cv=2, n_jobs=-1).fit(X, y)
    same_scores(search, serial)
    records = read_records(tmp_path)
    on_workers = [r for r in records if r["pid"] != os.getpid()]
    assert len(on_workers) == 4 * 2  # every candidate and fold, on a worker
    assert {r["pid"] for r in on_workers} <= worker_pids(client)
    assert len(records) == 4 * 2 + 1  # and the refit, here
    assert search.best_estimator_.predict(X[:5]).shape == (5,)


# the LocalCluster's scheduler runs in this process and unpickles each task (skorch warns
# there that the pretended GPU is missing; the parameter stays "auto")
@pytest.mark.filterwarnings("ignore::skorch.exceptions.DeviceWarning")
def test_device_auto_resolves_on_the_worker(client, digits, fast, tmp_path, monkeypatch):
    X, y = digits
    clf = FineTunedClassifier(**fast, device="auto", callbacks=[("r", RecordFit(str(tmp_path)))])
    # this process pretends to have a GPU: "auto" resolved here would send "cuda" to the
    # workers (which have none); resolved there, it is their "cpu"
    monkeypatch.setattr("skft.training.device.cuda_count", lambda: 1)
    from skft.training.device import resolve_device

    assert resolve_device("auto") == "cuda"
    with parallel_backend("dask", client=client):
        scores = cross_val_score(clf, X, y, cv=2)
    assert np.isfinite(scores).all()
    records = read_records(tmp_path)
    assert len(records) == 2
    assert {r["pid"] for r in records} <= worker_pids(client)
    assert {r["device"] for r in records} == {"cpu"}
    assert clone(clf).device == "auto"  # the parameter travels unresolved


def _write_images(folder, X) -> list[str]:
    paths = []
    for i, image in enumerate(X):
        path = folder / f"{i:03d}.png"
        Image.fromarray((np.asarray(image) * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _cache_counts() -> dict[str, int]:
    from skft.data.decode_cache import decode_cache
    from skft.training.cache import feature_cache

    return {
        "decoded": decode_cache.stats.misses,
        "decode_hits": decode_cache.stats.hits,
        "feature_hits": feature_cache.stats.hits,
    }


def _clear_caches() -> None:
    from skft.data.decode_cache import decode_cache
    from skft.training.cache import feature_cache

    decode_cache.clear()
    feature_cache.clear()


def test_paths_travel_and_each_worker_caches(client, digits, fast, tmp_path):
    X, y = digits
    paths = _write_images(tmp_path, X)
    client.run(_clear_caches)
    _clear_caches()
    clf = FineTunedClassifier(**fast)
    with parallel_backend("dask", client=client):
        search = GridSearchCV(clf, {"lr": [1e-3, 1e-2], "frozen_depth": [1]}, cv=2, refit=False)
        search.fit(paths, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert _cache_counts()["decoded"] == 0  # no pixels here: the workers read the files
    counts = list(client.run(_cache_counts).values())
    # each worker decodes a file at most once, then serves the folds and candidates from its
    # own cache; the frozen prefix's features are reused within a worker too
    assert all(c["decoded"] <= len(paths) for c in counts)
    assert sum(c["decoded"] for c in counts) >= len(paths)
    assert sum(c["decode_hits"] for c in counts) > 0
    assert sum(c["feature_hits"] for c in counts) > 0


def test_lambda_callback_runs_on_dask(client, digits, fast):
    X, y = digits
    scoring = EpochScoring(lambda net, X, y: 0.5, name="constant", on_train=True)
    clf = FineTunedClassifier(**fast, callbacks=[("constant", scoring)])
    with parallel_backend("dask", client=client):
        scores = cross_val_score(clf, X, y, cv=2)
    assert np.isfinite(scores).all()


def test_unpicklable_parameter_named_before_any_fit(client, digits, fast, tmp_path):
    X, y = digits
    clf = FineTunedClassifier(
        **fast, callbacks=[("record", RecordFit(str(tmp_path))), ("handle", NoPickle())]
    )
    with parallel_backend("dask", client=client):
        with pytest.raises(TypeError, match=r"parameter callbacks\[1\]=.*cannot be pickled"):
            GridSearchCV(clf, GRID, cv=2).fit(X, y)
    assert read_records(tmp_path) == []  # nothing trained
    clone(clf)  # outside the Dask backend, cloning needs copies only


def test_uncopyable_parameter_named_by_clone(fast):
    clf = FineTunedClassifier(**fast, callbacks=[("locked", Locked())])
    with pytest.raises(TypeError, match=r"parameter callbacks\[0\]=.*cannot be copied.*lock"):
        clone(clf)


def test_no_workers_is_joblibs_timeout(digits, fast):
    X, y = digits
    with (
        distributed.LocalCluster(
            n_workers=0, processes=False, dashboard_address=":0", silence_logs=logging.ERROR
        ) as empty,
        distributed.Client(empty, set_as_default=False) as client,
    ):
        with parallel_backend("dask", client=client, wait_for_workers_timeout=1):
            with pytest.raises(TimeoutError, match="no worker after 1 seconds"):
                GridSearchCV(FineTunedClassifier(**fast), GRID, cv=2).fit(X, y)


def test_killed_worker_search_completes(client, serial, digits, fast, tmp_path):
    X, y = digits
    flag, records = tmp_path / "killed", tmp_path / "records"
    records.mkdir()
    callbacks = [("kill", KillOnce(str(flag))), ("record", RecordFit(str(records)))]
    before = worker_pids(client)
    # X and y on every worker: what joblib scatters on its own lives on one worker, and a
    # search whose data died with that worker fails (FutureCancelledError)
    with parallel_backend("dask", client=client, scatter=[X, y]):
        search = GridSearchCV(
            FineTunedClassifier(**fast, callbacks=callbacks),
            GRID,
            cv=2,
            refit=False,
            error_score="raise",
        ).fit(X, y)
    assert int(flag.read_text()) in before  # a worker died in mid-fit
    # every candidate once, each scored as in one process: Dask ran the lost task again
    assert sorted(map(str, search.cv_results_["params"])) == sorted(map(str, ParameterGrid(GRID)))
    same_scores(search, serial)
    finished = {(r["lr"], r["frozen_depth"], r["fold"]) for r in read_records(records)}
    assert len(finished) == 4 * 2
