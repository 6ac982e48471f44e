"""A model folder never runs code: every attack vector on config.json is refused (issue 23)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris

import skft
from skft import FineTunedClassifier
from skft.cli.main import main
from skft.io.trust import ModelFileError, allowed_types

TINY = dict(
    backbone="mlp", pretrained=False, max_epochs=1, batch_size=32, random_state=0, augment="none"
)


class LocalLoss(torch.nn.CrossEntropyLoss):
    pass


class _Touch:
    """Unpickling this creates ``path``: the marker a successful attack leaves."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    return data.data.astype(np.float32), data.target


@pytest.fixture(scope="module")
def model(iris, tmp_path_factory):
    X, y = iris
    clf = FineTunedClassifier(**TINY).fit(X, y)
    path = clf.save(tmp_path_factory.mktemp("m") / "iris.skft")
    skft.load(path)  # every module loading imports is imported now
    return clf, path


def _copy(model, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model[1], tmp_path / "copy.skft"))


def _edit(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def _params(path: Path, **params) -> None:
    _edit(path, lambda c: c["params"].update(params))


def _refused(path: Path, match: str, **kwargs) -> str:
    """Load ``path``: a ModelFileError matching ``match``, and no module imported."""
    before = set(sys.modules)
    with pytest.raises(ModelFileError, match=match) as info:
        skft.load(path, **kwargs)
    assert set(sys.modules) - before == set()
    return str(info.value)


def _ref(name: str) -> dict:
    return {"__import__": name}


def test_torch_load_as_criterion_runs_no_pickle(model, tmp_path):
    evil, marker = tmp_path / "evil.pkl", tmp_path / "pwned"
    evil.write_bytes(pickle.dumps(_Touch(marker)))
    pickle.loads(evil.read_bytes()).close()  # the payload works: it creates the marker
    assert marker.exists()
    marker.unlink()
    path = _copy(model, tmp_path)
    _params(path, criterion=_ref("torch.load"), criterion__f=str(evil))
    _params(path, criterion__weights_only=False)
    message = _refused(path, "untrusted types in .*copy.skft: torch.load")
    assert "pass trusted=[...] to skft.load" in message and "criterion__f" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("param", "name", "extra"),
    [
        ("criterion", "torch.utils.cpp_extension.load_inline", {"criterion__name": "x"}),
        ("optimizer", "torch.hub.load", {"optimizer__repo_or_dir": "evil/repo"}),
        ("iterator_train", "os.system", {"iterator_train__command": "touch pwned"}),
    ],
)
def test_functions_from_trusted_packages_are_refused(model, tmp_path, param, name, extra):
    path = _copy(model, tmp_path)
    _params(path, **{param: _ref(name)}, **extra)
    message = _refused(path, f"untrusted types in .*: {name}")
    assert f"{next(iter(extra))} (its {param} is not trusted)" in message


@pytest.mark.parametrize(
    ("param", "name"),
    [
        ("criterion", "torch.nn.functional.cross_entropy"),  # a plain function
        ("scoring", "sklearn.metrics.accuracy_score"),
        ("criterion", "skft.training.checkpoint.EpochCheckpoint"),  # a class of skft's
        ("optimizer", "skft.data.adapters.BatchLoader"),  # trusted, but not an optimizer
        ("criterion", "skft.NoSuchLoss"),
    ],
)
def test_functions_and_other_classes_are_refused(model, tmp_path, param, name):
    path = _copy(model, tmp_path)
    _params(path, **{param: _ref(name)})
    _refused(path, f"untrusted types in .*: {name}")


@pytest.mark.parametrize(
    "params",
    [
        {"criterion__weight": _ref("torch.load")},
        {"optimizer__foo": {"nested": [_ref("os.system")]}},
        {"callbacks__epoch_log__bar_after": _ref("builtins.eval")},
        {"verbose": _ref("builtins.print")},
        {"module__x": 1},
        {"no_such_prefix__x": 1},
        {"__class__": "x"},
        {"torch_load_kwargs": {"weights_only": False}},
    ],
)
def test_parameters_that_are_not_plain_json_or_not_the_estimators_are_refused(
    model, tmp_path, params
):
    path = _copy(model, tmp_path)
    _params(path, **params)
    message = _refused(path, "refused parameters|untrusted types")
    assert next(iter(params)) in message


@pytest.mark.parametrize("name", ["OptunaSearch", "Compressed", "Popen", "FineTuneMixin"])
def test_only_the_estimator_classes_are_built(model, tmp_path, name):
    path = _copy(model, tmp_path)
    _edit(path, lambda c: c.update({"class": name}))
    _refused(path, f"unknown estimator class '{name}'")


def test_everything_refused_is_listed_in_one_error(model, tmp_path):
    path = _copy(model, tmp_path)
    _params(path, criterion=_ref("torch.load"), optimizer=_ref("torch.hub.load"))
    _params(path, optimizer__lr=0.1, dataset__x=_ref("os.system"), bogus=1)
    message = _refused(path, "untrusted types")
    for part in ("torch.load", "torch.hub.load", "optimizer__lr", "dataset__x", "bogus"):
        assert part in message


def test_trusted_types_are_admitted_on_both_sides(iris, tmp_path):
    X, y = iris
    clf = FineTunedClassifier(**TINY, criterion=LocalLoss).fit(X, y)
    with pytest.raises(ModelFileError, match="cannot save parameter criterion=.*LocalLoss"):
        clf.save(tmp_path / "refused.skft")
    path = clf.save(tmp_path / "m.skft", trusted=[LocalLoss])
    dotted = f"{LocalLoss.__module__}.{LocalLoss.__qualname__}"
    _refused(path, f"untrusted types in .*: {dotted}")
    for trusted in ([LocalLoss], [dotted]):
        loaded = skft.load(path, trusted=trusted)
        assert loaded.criterion is LocalLoss
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_save_refuses_what_load_would_refuse(iris, tmp_path):
    from sklearn.metrics import accuracy_score, make_scorer

    X, y = iris
    clf = FineTunedClassifier(**TINY, scoring=make_scorer(accuracy_score))
    with pytest.raises(ModelFileError, match="cannot save parameter scoring="):
        clf.fit(X, y).save(tmp_path / "s.skft")
    assert not (tmp_path / "s.skft" / "config.json").exists()


def test_old_module_names_stay_trusted():
    from skft.data.adapters import BatchLoader, ShuffledBatchLoader

    iterators, kinds = allowed_types()["iterator"], allowed_types().values()
    assert iterators["skft.data.ShuffledBatchLoader"] is ShuffledBatchLoader
    assert iterators["skft.data.BatchLoader"] is BatchLoader
    assert allowed_types()["loss"]["torch.nn.CrossEntropyLoss"] is torch.nn.CrossEntropyLoss
    assert all(isinstance(v, type) for kind in kinds for v in kind.values())  # no function


def test_predict_command_refuses_untrusted_types_and_takes_trust(iris, tmp_path, capsys):
    X, y = iris
    path = (
        FineTunedClassifier(**TINY, criterion=LocalLoss)
        .fit(X, y)
        .save(tmp_path / "m.skft", trusted=[LocalLoss])
    )
    np.savez(tmp_path / "new.npz", X=X[:4])
    args = ["predict", str(path), str(tmp_path / "new.npz"), "--out", str(tmp_path / "p.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "untrusted types" in err and "--trust NAME" in err
    assert not (tmp_path / "p.csv").exists()
    assert main([*args, "--trust", f"{LocalLoss.__module__}.LocalLoss"]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 5


# --------------------------------------------------------------------------
# weights: integrity and shapes
# --------------------------------------------------------------------------


def _tensor_shapes(path: Path) -> dict[str, list[int]]:
    data = (path / "weights.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


@pytest.mark.parametrize("width", [5, 10**9])
def test_weights_that_do_not_fit_the_config_are_refused_by_name(model, tmp_path, width):
    """A config saying 5 (or a billion) features: refused naming the tensors, nothing allocated."""
    path = _copy(model, tmp_path)
    _edit(path, lambda c: c["fitted"].update(input_shape=[width]))
    first = [k for k, s in _tensor_shapes(path).items() if len(s) == 2 and s[1] == 4]
    assert first
    message = _refused(path, "weights.safetensors does not fit the model")
    assert all(f"{k}: file" in message for k in first) and f"{width})" in message


def test_changed_weights_are_refused_naming_the_file(model, tmp_path):
    path = _copy(model, tmp_path)
    (path / "weights.safetensors").write_bytes(b"\0" + (path / "weights.safetensors").read_bytes())
    _refused(path, "weights.safetensors does not match the sha256 recorded in config.json")


# --------------------------------------------------------------------------
# any mutation: it loads, or ModelFileError; nothing is written
# --------------------------------------------------------------------------

_OUTSIDE = Path(tempfile.mkdtemp(prefix="skft-outside-"))
_NAMES = [
    "torch.load",
    "os.system",
    "torch.optim.SGD",
    "torch.nn.MSELoss",
    "skft.load",
    "skft.data.BatchLoader",
    "builtins.eval",
    "subprocess.Popen",
    "",
]
_STRINGS = st.sampled_from(
    [
        "",
        "../../etc/passwd",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        str(_OUTSIDE / "x"),
        str(_OUTSIDE / "dir/"),
        "model.ckpt",
        "auto",
        "cuda",
        "mlp",
        "find",
        "\0",
        "é" * 50,
    ]
) | st.text(max_size=8)
_LEAVES = (
    st.none()
    | st.booleans()
    | _STRINGS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**30), 10**30)
    | st.sampled_from([0, 1, -1, 2**31, 10**9])
    | st.builds(lambda n: {"__import__": n}, st.sampled_from(_NAMES))
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_STRINGS, inner, max_size=3),
    max_leaves=6,
)
_KEYS = st.sampled_from(
    [
        "criterion",
        "optimizer",
        "lr",
        "max_epochs",
        "batch_size",
        "iterator_train",
        "dataset",
        "callbacks",
        "backbone",
        "device",
        "checkpoint",
        "pretrained",
        "module",
        "head",
        "freeze",
        "augment",
        "criterion__f",
        "optimizer__momentum",
        "callbacks__epoch_log__bar_after",
        "iterator_valid__num_workers",
        "head__hidden",
        "torch_load_kwargs",
        "classes",
        "tta",
    ]
)
_FITTED = st.sampled_from(["input_shape", "classes", "lr_found", "target_scaler", "y_ndim"])
_TOP = st.sampled_from(
    [
        "format",
        "format_version",
        "class",
        "backbone",
        "plugins",
        "params",
        "fitted",
        "weights_sha256",
    ]
)
_MUTATIONS = st.one_of(
    st.tuples(st.just("param"), _KEYS, _VALUES),
    st.tuples(st.just("fitted"), _FITTED, _VALUES),
    st.tuples(st.just("top"), _TOP, _VALUES),
    st.tuples(st.just("drop"), _TOP | _KEYS, st.none()),
    st.tuples(st.just("truncate"), st.integers(0, 4000), st.booleans()),
    st.tuples(st.just("flip"), st.integers(0, 4000), st.booleans()),
)


def _mutate(path: Path, mutation) -> None:
    kind, key, value = mutation
    config = json.loads((path / "config.json").read_text())
    weights = path / "weights.safetensors"
    section = config.get("params" if kind in ("param", "drop") else "fitted")
    if kind in ("param", "fitted") and isinstance(section, dict):
        section[key] = value
    elif kind == "top":
        config[key] = value
    elif kind == "drop":
        config.pop(key, None)
        if isinstance(section, dict):
            section.pop(key, None)
    elif kind in ("param", "fitted"):
        pass  # the section was replaced by an earlier mutation
    else:
        data = bytearray(weights.read_bytes())
        if kind == "truncate":
            data = data[: key % (len(data) + 1)]
        elif data:
            data[key % len(data)] ^= 0xA5
        weights.write_bytes(bytes(data))
        if value:  # the digest updated too: the header and shape checks must catch it
            config["weights_sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (path / "config.json").write_text(json.dumps(config))


def _listing(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutations=st.lists(_MUTATIONS, min_size=1, max_size=3))
def test_any_mutation_loads_or_raises_model_file_error(model, mutations):
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp)
        path = Path(shutil.copytree(model[1], sandbox / "m.skft"))
        for mutation in mutations:
            _mutate(path, mutation)
        before = _listing(sandbox, _OUTSIDE)
        cwd = os.getcwd()
        os.chdir(sandbox)
        try:
            skft.load(path)
            event("loaded")
        except ModelFileError as exc:
            event(f"refused: {str(exc).split(':')[0][-40:]}")
        finally:
            os.chdir(cwd)
        assert _listing(sandbox, _OUTSIDE) == before
