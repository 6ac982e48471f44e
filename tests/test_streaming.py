"""Image files streamed through DataLoader workers: same predictions, bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import skft.data.streaming
from skft import FineTunedClassifier, FineTunedRegressor
from skft.data.adapters import adapt_input
from skft.data.datasets import load_image_folder
from skft.data.streaming import ImageFiles

ROOT = Path(__file__).resolve().parents[1]


def _write_images(folder: Path, n: int, side: int = 20, classes: int = 3, gray=False):
    """``n`` random JPEGs (non-square, so resizing and cropping run); paths and labels."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(n):
        label = i % classes
        sub = folder / f"c{label}"
        sub.mkdir(parents=True, exist_ok=True)
        shape = (side, side + 4) if gray else (side, side + 4, 3)
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        a[: side // 2] //= label + 1  # something to learn
        path = sub / f"{i:05d}.jpg"
        Image.fromarray(a).save(path, quality=90)
        paths.append(str(path))
        labels.append(label)
    return paths, np.array(labels)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("stream"), 36)


@pytest.mark.parametrize("tta", [False, 2])
def test_streamed_and_in_memory_fits_predict_the_same(files, fast, tta):
    paths, y = files
    settings = {**fast, "augment_strength": 0.5, "tta": tta}
    memory = FineTunedClassifier(**settings, streaming=False).fit(paths, y)
    streamed = FineTunedClassifier(**settings, streaming=True, num_workers=2).fit(paths, y)
    assert isinstance(adapt_input(streamed, paths, fitting=False), ImageFiles)
    assert isinstance(adapt_input(memory, paths, fitting=False), torch.Tensor)
    np.testing.assert_array_equal(streamed.predict_proba(paths), memory.predict_proba(paths))
    # a streamed fit predicts in-memory data the same way too
    np.testing.assert_array_equal(
        streamed.predict_proba(paths[:5]), memory.predict_proba(paths[:5])
    )


def test_streaming_regressor_early_stopping_and_no_workers(files, fast):
    paths, y = files
    target = y.astype(float)
    settings = {**fast, "early_stopping": True, "max_epochs": 2, "num_workers": 0}
    a = FineTunedRegressor(**settings, streaming=False).fit(paths, target)
    b = FineTunedRegressor(**settings, streaming=True).fit(paths, target)
    np.testing.assert_array_equal(a.predict(paths), b.predict(paths))
    assert len(a.history) == len(b.history)


def test_streamed_pixels_equal_in_memory_pixels(tmp_path):
    paths, _ = _write_images(tmp_path / "rgb", 4)
    gray, _ = _write_images(tmp_path / "gray", 3, gray=True)
    for group in (paths, gray):
        files = ImageFiles(group, 16)
        assert files.shape == (len(group), 1 if group is gray else 3, 16, 16)
        stacked = torch.stack([files[i] for i in range(len(files))])
        torch.testing.assert_close(stacked, files.load(), rtol=0, atol=0)
        torch.testing.assert_close(files[1:3], stacked[1:3], rtol=0, atol=0)
        assert files.nbytes == stacked.numel()


def test_auto_streams_above_the_threshold(files, fast, monkeypatch):
    paths, y = files
    clf = FineTunedClassifier(**fast).fit(paths, y)  # auto, 48 tiny images: in memory
    assert isinstance(adapt_input(clf, paths, fitting=False), torch.Tensor)
    monkeypatch.setattr(skft.data.streaming, "STREAM_ABOVE_BYTES", 1000)
    assert isinstance(adapt_input(clf, paths, fitting=False), ImageFiles)
    expected = FineTunedClassifier(**fast, streaming=False).fit(paths, y).predict_proba(paths)
    np.testing.assert_array_equal(clf.predict_proba(paths), expected)


def test_image_folder_paths_stream(files, fast):
    paths, _ = files
    root = Path(paths[0]).parents[1]
    data = load_image_folder(root, return_paths=True)
    clf = FineTunedClassifier(**fast, streaming=True).fit(data.images, data.labels)
    assert set(clf.classes_) == {"c0", "c1", "c2"}
    assert clf.predict(data.images[:4]).shape == (4,)


def test_streaming_parameter_errors(digits, fast, tmp_path):
    X, y = digits
    with pytest.raises(ValueError, match="streaming=True streams image files"):
        FineTunedClassifier(**fast, streaming=True).fit(X, y)
    with pytest.raises(ValueError, match="streaming must be True, False or 'auto'"):
        FineTunedClassifier(**fast, streaming="yes").fit(X, y)
    with pytest.raises(ValueError, match="num_workers must be None or an int >= 0"):
        FineTunedClassifier(**fast, num_workers=-1).fit(X, y)
    with pytest.raises(FileNotFoundError, match="image file not found"):
        FineTunedClassifier(**fast, streaming=True).fit([str(tmp_path / "no.jpg")] * 4, [0, 1] * 2)


_PROBE = """
import os, resource, sys
import torch
torch.set_num_threads(1)
from skft import FineTunedClassifier
folder, n, streaming = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
paths = sorted(str(p) for p in __import__("pathlib").Path(folder).rglob("*.jpg"))[:n]
y = [i % 3 for i in range(len(paths))]
clf = FineTunedClassifier(backbone="smallcnn", pretrained=False, image_size=32, max_epochs=1,
    batch_size=100, random_state=0, augment_strength=0.5, num_workers=1, streaming=streaming)

def peak_of_fit(k):
    # the peak RSS of this fit alone: VmHWM reset to the current RSS (Linux clear_refs)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    clf.fit(paths[:k], y[:k])
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) * 1024

peak_of_fit(200)  # warm-up: imports, allocator pools
print(peak_of_fit(len(paths)) - peak_of_fit(200))
"""


def _peak_growth(folder: Path, n: int, streaming: bool) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # glibc returns freed blocks at once (large ones are mmapped, no trimming threshold,
    # one arena), so the peak RSS counts what was alive, not the allocator's leftovers
    env.update(MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0", MALLOC_ARENA_MAX="1")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(folder), str(n), "1" if streaming else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=True,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc")
def test_streaming_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    n = 2000
    _write_images(tmp_path, n, side=40)
    decoded = (n - 200) * 3 * 32 * 32  # 5.5 MB more uint8 pixels than for 200 images
    streamed = _peak_growth(tmp_path, n, streaming=True)
    in_memory = _peak_growth(tmp_path, n, streaming=False)  # the control: it does grow
    assert in_memory > decoded / 2, (streamed, in_memory)
    assert streamed < decoded / 3, (streamed, in_memory)
