"""Bad text input: image paths refused, truncation warnings pointing at the user's line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from skft import FineTunedClassifier


@pytest.mark.parametrize(
    "paths",
    [["a.jpg", "b.png"], ["photos/cat.JPEG", "dog.webp", "x.tiff"], np.array(["a.bmp", "b.gif"])],
)
def test_image_file_names_are_refused(fast, paths):
    with pytest.raises(ValueError, match="image file paths") as info:
        FineTunedClassifier(**fast).fit(paths, [0, 1] + [0] * (len(paths) - 2))
    text = str(info.value)
    assert "takes texts" in text and "image backbone" in text
    assert "efficientnet_lite0" in text and "resnet18" in text


def test_existing_image_files_are_refused(fast, tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"img{i}"  # no extension: found on disk
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
        paths.append(str(path))
    with pytest.raises(ValueError, match="paths to existing files.*image backbone"):
        FineTunedClassifier(**fast).fit(paths, [0, 1])


def test_texts_with_dots_and_some_image_names_still_train(fast):
    X = ["see www.example.com now.", "call 555.1234 today", "photo.jpg attached", "ok."]
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}).fit(X, [0, 1, 0, 1])
    assert clf.predict(X).shape == (4,)


def _truncation_warnings(caught):
    found = [w for w in caught if "truncated" in str(w.message)]
    assert found, [str(w.message) for w in caught]
    return found


def test_truncation_warning_points_at_the_users_fit_and_predict(fast):
    long = " ".join(["free"] * 40)
    X, y = [long, "ok", long, "win"], ["spam", "ham", "spam", "ham"]
    clf = FineTunedClassifier(**{**fast, "max_epochs": 1}, max_length=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    assert {w.filename for w in _truncation_warnings(caught)} == {__file__}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.predict(X)
        clf.predict_proba(X)
    assert {w.filename for w in _truncation_warnings(caught)} == {__file__}
