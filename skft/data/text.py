"""Texts (and labels) from a CSV/TSV file or a folder of ``.txt`` files, for the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .datasets import IMAGE_SUFFIXES, ImageData, _group, _spread

__all__ = [
    "TABLE_SUFFIXES",
    "is_table",
    "is_text_folder",
    "is_text_source",
    "load_text_folder",
    "load_text_table",
    "load_texts",
    "table_columns",
]

#: File suffixes read as tables of texts (tab-separated for .tsv/.tab).
TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def is_table(source: object) -> bool:
    """``source`` names a CSV/TSV file (by its suffix)."""
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in TABLE_SUFFIXES


def is_text_folder(source: object) -> bool:
    """``source`` is a folder of ``.txt`` files (outside hidden folders) and no images.

    A folder of images with a stray ``notes.txt`` stays an image folder.
    """
    if not isinstance(source, (str, Path)) or not Path(source).is_dir():
        return False
    suffixes = {p.suffix.lower() for p in _visible_files(Path(source))}
    return ".txt" in suffixes and not suffixes & IMAGE_SUFFIXES


def is_text_source(source: object) -> bool:
    """``source`` holds texts: a CSV/TSV table or a folder of ``.txt`` files."""
    return is_table(source) or is_text_folder(source)


def _visible_files(root: Path) -> list[Path]:
    """Files below ``root``, sorted, outside hidden files and folders."""
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
    ]


def load_text_folder(
    path: str | Path, *, labelled: bool = True, limit: int | None = None
) -> ImageData:
    """``(texts, labels, ids)`` from a folder of ``.txt`` files, one text per file.

    Labelled, the layout is scikit-learn's :func:`~sklearn.datasets.load_files`
    (and ``ImageFolder``'s): one sub-folder per class, named as the class
    (``spam/0001.txt``, ``ham/0002.txt``). Unlabelled, every ``.txt`` file
    below ``path`` is read. ``ids`` are the files' paths relative to
    ``path``; ``limit`` keeps at most that many, spread over the classes.
    Files are read as UTF-8 with surrounding whitespace stripped; one that is
    not valid UTF-8 is an error naming it.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a folder")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    files = [f for f in _visible_files(root) if f.suffix.lower() == ".txt"]
    if labelled:
        loose = [f for f in files if len(f.relative_to(root).parts) < 2]
        if loose:
            raise ValueError(
                f"{root}: {len(loose)} .txt file(s) not in a class sub-folder (e.g. "
                f"{loose[0].name}); put each class's files in a folder named as the class"
            )
    groups = _group(files, root, labelled)
    if not groups:
        raise ValueError(f"{root}: no .txt files")
    if limit is not None:
        groups = _spread(groups, limit)
    picked = [(label, f) for label, fs in groups.items() for f in fs]
    texts = []
    for _, f in picked:
        try:
            texts.append(f.read_text(encoding="utf-8").strip())
        except UnicodeDecodeError as exc:
            raise ValueError(f"{f}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    ids = [f.relative_to(root).as_posix() for _, f in picked]
    labels = np.asarray([label for label, _ in picked]) if labelled else None
    return ImageData(texts, labels, ids)  # type: ignore[arg-type]


def load_texts(
    source: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    labelled: bool = True,
    limit: int | None = None,
) -> ImageData:
    """A CSV/TSV table (:func:`load_text_table`) or a ``.txt`` folder (:func:`load_text_folder`)."""
    if is_table(source):
        return load_text_table(source, text_column, label_column, labelled=labelled, limit=limit)
    return load_text_folder(source, labelled=labelled, limit=limit)


def load_text_table(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    labelled: bool = True,
    limit: int | None = None,
) -> ImageData:
    """``(texts, labels, ids)`` from a CSV (comma) or TSV (tab, no quoting) file with a header.

    ``ids`` are the row numbers (1 = the first data row) as str. A missing
    column is an error that lists the file's columns; with ``labelled`` every
    row needs a non-empty label.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = _table_reader(fh, path)
        columns = reader.fieldnames or []
        wanted = [text_column] + ([label_column] if labelled and label_column else [])
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ValueError(
                f"{path}: no column {missing[0]!r} (columns: {', '.join(columns) or 'none'}); "
                "name the columns with --text-column and --label-column"
            )
        rows = []
        for row in reader:
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise ValueError(f"{path}: no data rows")
    texts = [row[text_column] or "" for row in rows]
    ids = [str(i + 1) for i in range(len(rows))]
    if not (labelled and label_column):
        return ImageData(texts, None, ids)  # type: ignore[arg-type]
    labels = [row[label_column] for row in rows]
    empty = [i + 1 for i, v in enumerate(labels) if v is None or v == ""]
    if empty:
        raise ValueError(f"{path}: rows without a label in {label_column!r}: {empty[:5]}")
    return ImageData(texts, np.asarray(labels), ids)  # type: ignore[arg-type]


def _table_reader(fh, path: Path) -> csv.DictReader:
    """Rows of a CSV (comma, quoted) or TSV (tab, no quoting, by the suffix) file."""
    tsv = path.suffix.lower() in (".tsv", ".tab")
    return csv.DictReader(
        fh, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
    )


def table_columns(path: str | Path) -> list[str]:
    """The column names in the header of a CSV/TSV file (none for an empty file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(_table_reader(fh, path).fieldnames or [])
