"""Labelled texts from a CSV or TSV file, for ``skft tune --data`` and ``skft predict``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .datasets import ImageData

__all__ = ["TABLE_SUFFIXES", "is_table", "load_text_table"]

#: File suffixes read as tables of texts (tab-separated for .tsv/.tab).
TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def is_table(source: object) -> bool:
    """``source`` names a CSV/TSV file (by its suffix)."""
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() in TABLE_SUFFIXES


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
    tsv = path.suffix.lower() in (".tsv", ".tab")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(
            fh, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
        )
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
