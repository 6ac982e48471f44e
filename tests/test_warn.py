"""warn_at_caller: a warning raised deep inside skft names the user's line."""

from __future__ import annotations

import inspect
import types
import warnings

import numpy as np
import pytest

from skft.plugin_api import warn_at_caller


def _module(name: str, source: str, **names) -> types.ModuleType:
    """A module called ``name`` (so its frames count as that package's) from ``source``."""
    module = types.ModuleType(name)
    module.__dict__.update(names)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _next_line() -> int:
    """The number of the line after the caller's."""
    return inspect.currentframe().f_back.f_lineno + 1


# deep: a plugin's code warns; middle: a library (skorch here) between it and the user
_DEEP = _module(
    "skft_toy._deep",
    "def warn_deep():\n    warn_at_caller('deep', UserWarning)\n",
    warn_at_caller=warn_at_caller,
)
_LIBRARY = _module("skorch._toy", "def call(f):\n    return f()\n")
_SKFT = _module("skft._toy", "def fit(call, f):\n    return call(f)\n")
_THIRD_PARTY = _module(
    "acme_backbones.spec",
    "def build():\n    warn_at_caller('from a third-party plugin', UserWarning)\n",
    warn_at_caller=warn_at_caller,
)


def test_the_warning_names_the_callers_line():
    with pytest.warns(UserWarning, match="deep") as record:
        line = _next_line()
        _SKFT.fit(_LIBRARY.call, _DEEP.warn_deep)
    (w,) = record
    assert (w.filename, w.lineno) == (__file__, line)


def test_a_third_party_plugin_is_walked_out_of_too():
    with pytest.warns(UserWarning, match="third-party") as record:
        line = _next_line()
        _THIRD_PARTY.build()
    assert (record[0].filename, record[0].lineno) == (__file__, line)


def test_skip_names_more_packages():
    other = _module("acme_runner", "def run(f):\n    return f()\n")
    with pytest.warns(UserWarning) as record:
        other.run(_DEEP.warn_deep)  # no skip: acme_runner is the caller's line
    assert record[0].filename == "<acme_runner>"
    deep = _module(
        "skft_toy._skip",
        "def warn_deep():\n    warn_at_caller('deep', UserWarning, skip=['acme_runner'])\n",
        warn_at_caller=warn_at_caller,
    )
    with pytest.warns(UserWarning) as record:
        other.run(deep.warn_deep)
    assert record[0].filename == __file__


def test_filters_and_categories_apply_as_to_any_warning():
    class ToyWarning(UserWarning):
        pass

    deep = _module(
        "skft_toy._category",
        "def warn_deep(c):\n    warn_at_caller('toy', c)\n",
        warn_at_caller=warn_at_caller,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ToyWarning)
        with pytest.raises(ToyWarning, match="toy"):
            deep.warn_deep(ToyWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", ToyWarning)
        deep.warn_deep(ToyWarning)
    assert caught == []


def test_skipped_image_files_warn_at_the_users_line(tmp_path):
    from PIL import Image

    from skft.data.datasets import SkippedFilesWarning, load_image_folder

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / label / "0.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(SkippedFilesWarning, match="broken.png") as record:
        line = _next_line()
        load_image_folder(tmp_path, 8)
    assert (record[0].filename, record[0].lineno) == (__file__, line)
