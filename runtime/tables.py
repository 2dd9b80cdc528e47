"""CSV files with a header row (manifests, score tables, MOS lists), read whole.

Names and values are stripped of surrounding spaces; every row has as many fields as the header (blank lines
are skipped); errors name the file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from vqa_rt.errors import InputError


@dataclass(frozen=True)
class Table:
    """A CSV file's columns and rows; ``lines[i]`` is the line number of ``rows[i]``."""

    path: str
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]

    def require(self, *names: str) -> None:
        """Raise :class:`InputError` naming the first of ``names`` that is not a column."""
        for name in names:
            if name not in self.columns:
                raise InputError(f"{self.path}: no column {name!r} (columns: {', '.join(self.columns)})")


def read_table(path: str) -> Table:
    """Read a CSV file whose first line is its header."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: is empty (expected a header line)")
            columns = [name.strip() for name in header]
            duplicated = sorted({name for name in columns if columns.count(name) > 1})
            if duplicated or "" in columns:
                raise InputError(f"{path}: header has empty or repeated column names: {header}")
            rows, lines = [], []
            for fields in reader:
                if not any(field.strip() for field in fields):
                    continue
                if len(fields) != len(columns):  # too few as too many: a shifted or cut row
                    raise InputError(
                        f"{path}: line {reader.line_num} has {len(fields)} fields, the header {len(columns)}")
                rows.append(dict(zip(columns, (field.strip() for field in fields))))
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a CSV file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    return Table(path, columns, rows, lines)
