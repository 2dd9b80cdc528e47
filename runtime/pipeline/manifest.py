"""Batch manifests: one CSV row per distorted video to score against its reference.

Columns: ``reference`` and ``distorted`` (paths; relative ones are relative to the
manifest's folder), for raw YUV ``width``, ``height`` and optionally ``pix_fmt`` and
``fps`` (the frame rate, which NR models' per-second sampling needs), and any others
(``mos``, codec, rate point ...), which are carried into the results; none may be named
like a column the results add (the engines' and ``frames``, ``status``, ``error``,
``seconds``). A row is identified by its ``distorted`` value, which must be unique.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sources import VideoInput, check_fps
from vqa_rt.runtime.tables import read_table

KEY = "distorted"
REQUIRED = ("reference", KEY)


@dataclass(frozen=True)
class ManifestRow:
    """A row as written (``values``) and the two videos it names."""

    values: dict[str, str]
    reference: VideoInput
    distorted: VideoInput

    @property
    def key(self) -> str:
        return self.values[KEY]


@dataclass(frozen=True)
class Manifest:
    path: str
    columns: list[str]
    rows: list[ManifestRow]


def _positive_int(value: str, what: str, where: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value) if value.isascii() and value.isdigit() else 0  # '²' is a digit int() refuses
    except ValueError:  # more digits than int() converts
        number = 0
    if number == 0:
        raise InputError(f"{where}: {what} {value!r} is not a positive whole number")
    return number


def _fps(value: str, where: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: fps {value!r} is not a number") from None
    return check_fps(f"{where}: fps", number)


def read_manifest(path: str, fps: float | None = None) -> Manifest:
    """Read and check a manifest; videos are not opened here. ``fps`` is the frame rate of raw YUV rows
    whose ``fps`` field is empty (or absent)."""
    table = read_table(path)
    table.require(*REQUIRED)
    folder = os.path.dirname(os.path.abspath(path))
    rows, seen = [], {}
    for values, line in zip(table.rows, table.lines):
        where = f"{path}: line {line}"
        for column in REQUIRED:
            if not values[column]:
                raise InputError(f"{where}: no {column} path")
        if values[KEY] in seen:
            raise InputError(f"{where}: distorted {values[KEY]!r} is already on line {seen[values[KEY]]}")
        seen[values[KEY]] = line
        width = _positive_int(values.get("width", ""), "width", where)
        height = _positive_int(values.get("height", ""), "height", where)
        pix_fmt = values.get("pix_fmt") or None
        rate = _fps(values.get("fps", ""), where) or fps
        videos = (VideoInput(os.path.join(folder, values[c]), width, height, pix_fmt, rate) for c in REQUIRED)
        rows.append(ManifestRow(values, *videos))
    if not rows:
        raise InputError(f"{path}: has no rows")
    return Manifest(path, table.columns, rows)
