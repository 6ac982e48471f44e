"""skft.data.datasets: digits as images, image folders, .npz files, and the one entry for all."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from skft.data import datasets
from skft.data.adapters import adapt_images
from skft.data.datasets import (
    SkippedFilesWarning,
    load_data,
    load_digits_images,
    load_image_folder,
    load_npz,
)

COUNTS = {"blue": 10, "green": 2, "red": 10}


def _image(rng, shape=(12, 16, 3)) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.fixture
def folder(tmp_path):
    """Three unbalanced classes of small PNGs, plus files a loader must skip."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for label, n in COUNTS.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            _image(rng).save(root / label / f"{i:02d}.png")
    (root / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "blue" / "notes.txt").write_text("not an image")
    (root / "blue" / ".hidden.png").write_bytes(b"ignored, not listed")
    _image(rng).save(root / "loose.png")  # outside any class folder
    return root


def _caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [w for w in caught if issubclass(w.category, SkippedFilesWarning)]


# --------------------------------------------------------------------------
# image folders
# --------------------------------------------------------------------------


def test_folder_classes_ids_and_pixels(folder):
    (X, y, ids), skipped = _caught(load_image_folder, folder, 8)
    assert X.shape == (22, 8, 8, 3) and X.dtype == np.uint8
    assert sorted(set(y)) == ["blue", "green", "red"]
    assert {c: int((y == c).sum()) for c in COUNTS} == COUNTS
    assert ids[:2] == ["blue/00.png", "blue/01.png"] and len(ids) == len(set(ids)) == 22
    assert all(i.split("/")[0] == label for i, label in zip(ids, y))
    expected = adapt_images([str(folder / "red" / "03.png")], 8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(X[ids.index("red/03.png")], expected[0])
    assert len(skipped) == 1


def test_skipped_files_are_listed_with_reasons(folder):
    with pytest.warns(SkippedFilesWarning) as record:
        load_image_folder(folder, 8)
    (message,) = [str(w.message) for w in record]
    assert "skipped 3 file(s)" in message
    assert "broken.jpg (UnidentifiedImageError" in message
    assert "notes.txt (not an image file)" in message
    assert "loose.png (not in a class sub-folder)" in message
    assert ".hidden" not in message


def test_unlabelled_folder_takes_every_image(folder):
    (X, y, ids), _ = _caught(load_image_folder, folder, 8, labelled=False)
    assert y is None and len(X) == 23 and "loose.png" in ids


def test_limit_keeps_every_class_evenly_spaced(folder):
    # 23 image files (red's include broken.jpg): 6 shared out 2 blue, 1 green, 3 red,
    # evenly spaced within each class; the broken one among them is skipped, not replaced
    (X, y, ids), skipped = _caught(load_image_folder, folder, 8, limit=6)
    assert ids == ["blue/00.png", "blue/09.png", "green/00.png", "red/00.png", "red/05.png"]
    assert len(X) == 5 and list(y) == ["blue", "blue", "green", "red", "red"]
    assert "broken.jpg" in str(skipped[0].message)
    (_, y3, _), _ = _caught(load_image_folder, folder, 8, limit=3)
    assert list(y3) == ["blue", "green", "red"]  # the small class keeps one
    with pytest.raises(ValueError, match="below the number of classes"):
        _caught(load_image_folder, folder, 8, limit=2)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            load_image_folder(folder, 8, limit=bad)
        with pytest.raises(ValueError, match="positive integer"):
            load_data("digits", limit=bad)
    (X_all, _, _), _ = _caught(load_image_folder, folder, 8, limit=1000)
    assert len(X_all) == 22
    (_, _, ids_u), _ = _caught(load_image_folder, folder, 8, labelled=False, limit=4)
    # unlabelled: one group of 24 files, indices 0, 8, 15, 23 (the last is broken.jpg)
    assert ids_u == ["blue/00.png", "blue/08.png", "red/02.png"]


def test_return_paths_checks_files_without_decoding(folder):
    (paths, y, ids), skipped = _caught(load_image_folder, folder, return_paths=True)
    assert len(paths) == 22 and all(isinstance(p, str) for p in paths)
    assert not any("broken" in p for p in paths) and "broken.jpg" in str(skipped[0].message)
    assert paths[0] == str(folder / ids[0])
    (X, _, _), _ = _caught(load_image_folder, folder, 8)
    np.testing.assert_array_equal(adapt_images(paths, 8).permute(0, 2, 3, 1).numpy(), X)


def test_grayscale_and_mixed_folders(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            _image(rng, (10, 10)).save(tmp_path / label / f"{i}.png")
    X, _, _ = load_image_folder(tmp_path, 6)
    assert X.shape == (6, 6, 6, 1)
    _image(rng).save(tmp_path / "b" / "3_rgb.png")
    monkeypatch.setattr(datasets, "_DECODE_CHUNK", 2)  # grayscale chunks, then an RGB one
    X, _, ids = load_image_folder(tmp_path, 6)
    assert X.shape == (7, 6, 6, 3)
    gray = X[ids.index("a/0.png")]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 8)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        load_image_folder(tmp_path / "file.png", 8)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class sub-folders"):
        load_image_folder(tmp_path / "empty", 8)
    (tmp_path / "bad" / "c").mkdir(parents=True)
    (tmp_path / "bad" / "c" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="no readable images"), pytest.warns(SkippedFilesWarning):
        load_image_folder(tmp_path / "bad", 8)


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_images():
    X, y = load_digits_images()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float32 and len(y) == 1797
    assert X.min() == 0 and X.max() == 1
    X3, y3 = load_digits_images(n_class=3)
    assert set(y3) == {0, 1, 2}
    X16, _ = load_digits_images(image_size=16)
    assert X16.shape == (1797, 16, 16) and 0 <= X16.min() and X16.max() <= 1


def test_digits_stratified_split():
    Xtr, Xte, ytr, yte = load_digits_images(100, 300, random_state=3)
    assert Xtr.shape == (100, 8, 8) and Xte.shape == (300, 8, 8)
    assert np.bincount(ytr).min() >= 9 and np.bincount(ytr).max() <= 11  # 10 per class
    assert np.bincount(yte).min() >= 29 and np.bincount(yte).max() <= 31
    again = load_digits_images(100, 300, random_state=3)
    np.testing.assert_array_equal(again[0], Xtr)
    other = load_digits_images(100, 300, random_state=4)
    assert not np.array_equal(other[0], Xtr)
    small = load_digits_images(50, 50, image_size=12)
    assert small[0].shape == (50, 12, 12) and small[1].shape == (50, 12, 12)


# --------------------------------------------------------------------------
# .npz and load_data
# --------------------------------------------------------------------------


def test_npz(tmp_path):
    X = np.zeros((4, 5, 5), np.float32)
    np.savez(tmp_path / "xy.npz", X=X, y=np.arange(4))
    np.savez(tmp_path / "x.npz", X=X)
    np.savez(tmp_path / "other.npz", images=X)
    Xl, yl = load_npz(tmp_path / "xy.npz")
    assert Xl.shape == (4, 5, 5) and list(yl) == [0, 1, 2, 3]
    assert load_npz(tmp_path / "x.npz", labelled=False)[1] is None
    with pytest.raises(ValueError, match="no array 'y'"):
        load_npz(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="needs an array 'X'"):
        load_npz(tmp_path / "other.npz")


def test_load_data_sources(tmp_path, folder):
    X, y, ids = load_data("digits", limit=30)
    assert X.shape == (30, 8, 8) and len(y) == 30 and ids[-1] == "29"
    np.savez(tmp_path / "d.npz", X=X, y=y)
    X2, y2, ids2 = load_data(str(tmp_path / "d.npz"), limit=10)
    assert len(X2) == 10 and ids2 == [str(i) for i in range(10)]
    (X3, y3, _), _ = _caught(load_data, folder, 8)
    assert X3.shape == (22, 8, 8, 3) and set(y3) == set(COUNTS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data(tmp_path / "nope")
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="not 'digits', an .npz file or a folder"):
        load_data(tmp_path / "table.csv")
