"""Delta-QP map files that encoders take as they are, written one frame at a time.

Every format holds, per frame, the integer delta-QP map (``rows`` x ``cols`` cells
of ``grid`` x ``grid`` pixels, raster order: left to right, then top to bottom;
``cols = ceil(W / grid)``, ``rows = ceil(H / grid)``, partial cells on the right and
bottom edges included):

``npy``
    NumPy ``.npy`` v1.0, int8, shape ``(frames, rows, cols)``. The header (128 bytes)
    is rewritten with the frame count when the stream ends.
``csv``
    Header ``frame,row,col,delta_qp,qp``, then one line per cell; ``qp`` is the
    absolute QP ``base_qp + delta_qp``.
``x265``
    Raw little-endian float32, ``rows * cols`` values per frame, frames
    concatenated: the layout of ``x265_picture.quantOffsets`` (one offset per 16x16
    block, ``ceil(W/16) * ceil(H/16)`` of them; x265 needs adaptive quantization on
    for them to apply). Grid 16 only.
``kvazaar``
    Kvazaar/uvg266 ``--roi`` text file: per frame a line ``cols rows`` then ``rows``
    lines of ``cols`` integers. Kvazaar 2.3 applies one delta per 64x64 CTU and of a
    finer map reads only the cell at each CTU's top-left corner (point sampling,
    measured in ``tests/runtime/qpmaps/test_kvazaar_roi.py``), hence the default grid
    of 64 for both Kvazaar formats: vqa-rt averages the cells a CTU covers. Kvazaar
    reads a file ending in ``.bin`` as binary, so this one must not.
``kvazaar-bin``
    The binary form, per frame: int32 ``cols``, int32 ``rows`` (little-endian), then
    ``rows * cols`` int8 deltas. The file name must end in ``.bin``.
``json``
    Only the summary (per-frame mean/min/max and a histogram of the deltas); see
    :mod:`vqa_rt.runtime.pipeline.qpmap`.

Files are written to a temporary name and renamed into place only when the stream
ends without error, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import abc
import contextlib
import struct
from typing import IO, Iterator

import numpy as np

from vqa_rt.errors import InputError
from vqa_rt.runtime.outputs import open_atomic
from vqa_rt.runtime.qpmaps.conversion import BLOCK, QPConversion

FORMATS = ("npy", "csv", "x265", "kvazaar", "kvazaar-bin", "json")
KVAZAAR_CTU = 64
SUMMARY_ONLY = "json"


def default_grid(fmt: str) -> int:
    """The cell size a format is written at unless the user asks otherwise."""
    return KVAZAAR_CTU if fmt.startswith("kvazaar") else BLOCK


def conversion_for(fmt: str, grid: int | None = None, **values) -> QPConversion:
    """A :class:`QPConversion` for maps written in ``fmt``: at ``grid`` (None: the format's default grid)."""
    return QPConversion(grid=default_grid(fmt) if grid is None else grid, **values)


def check_format(fmt: str, path: str, grid: int) -> None:
    """Reject a format/path/grid combination the target encoder would misread."""
    if fmt not in FORMATS:
        raise InputError(f"unknown QP-map format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "x265" and grid != BLOCK:
        raise InputError(f"the x265 format holds one offset per 16x16 block: grid must be 16, got {grid}")
    is_bin = path.lower().endswith(".bin")
    if fmt == "kvazaar-bin" and not is_bin:
        raise InputError(f"{path}: Kvazaar reads a binary ROI file only if its name ends in .bin")
    if fmt == "kvazaar" and is_bin:
        raise InputError(f"{path}: Kvazaar would read a .bin file as binary; use kvazaar-bin or another name")


class MapWriter(abc.ABC):
    """Writes int8 delta maps of one shape, frame by frame, to an open file."""

    binary = True

    def __init__(self, handle: IO, shape: tuple[int, int], base_qp: int):
        self.handle, self.shape, self.base_qp = handle, shape, base_qp
        self.frames = 0

    def write(self, delta: np.ndarray) -> None:
        """Append one frame's map."""
        if delta.shape != self.shape:
            raise ValueError(f"map of shape {delta.shape} in a stream of {self.shape} maps")
        self._write(delta)
        self.frames += 1

    def finish(self) -> None:
        """Complete the file once every frame is written."""

    @abc.abstractmethod
    def _write(self, delta: np.ndarray) -> None: ...


class NpyWriter(MapWriter):
    HEADER_BYTES = 128  # magic, version, header length and the padded dict: 64-byte aligned
    MAGIC = b"\x93NUMPY\x01\x00"

    def __init__(self, handle: IO, shape: tuple[int, int], base_qp: int):
        super().__init__(handle, shape, base_qp)
        self.handle.write(self._header(0))

    def _header(self, frames: int) -> bytes:
        fields = {"descr": "|i1", "fortran_order": False, "shape": (frames, *self.shape)}
        text = repr(fields).ljust(self.HEADER_BYTES - len(self.MAGIC) - 3) + "\n"
        return self.MAGIC + struct.pack("<H", len(text)) + text.encode("latin1")

    def _write(self, delta: np.ndarray) -> None:
        self.handle.write(delta.astype(np.int8).tobytes())

    def finish(self) -> None:
        self.handle.seek(0)
        self.handle.write(self._header(self.frames))
        self.handle.seek(0, 2)


class CsvWriter(MapWriter):
    binary = False

    def __init__(self, handle: IO, shape: tuple[int, int], base_qp: int):
        super().__init__(handle, shape, base_qp)
        self.handle.write("frame,row,col,delta_qp,qp\n")

    def _write(self, delta: np.ndarray) -> None:
        rows, cols = np.indices(self.shape)
        self.handle.writelines(
            f"{self.frames},{r},{c},{d},{self.base_qp + d}\n"
            for r, c, d in zip(rows.ravel(), cols.ravel(), delta.ravel().tolist())
        )


class X265Writer(MapWriter):
    def _write(self, delta: np.ndarray) -> None:
        self.handle.write(delta.astype("<f4").tobytes())


class KvazaarTextWriter(MapWriter):
    binary = False

    def _write(self, delta: np.ndarray) -> None:
        rows, cols = self.shape
        self.handle.write(f"{cols} {rows}\n")
        self.handle.writelines(" ".join(map(str, row)) + "\n" for row in delta.tolist())


class KvazaarBinaryWriter(MapWriter):
    def _write(self, delta: np.ndarray) -> None:
        rows, cols = self.shape
        self.handle.write(struct.pack("<ii", cols, rows) + delta.astype(np.int8).tobytes())


WRITERS: dict[str, type[MapWriter]] = {
    "npy": NpyWriter,
    "csv": CsvWriter,
    "x265": X265Writer,
    "kvazaar": KvazaarTextWriter,
    "kvazaar-bin": KvazaarBinaryWriter,
}


@contextlib.contextmanager
def open_map_writer(fmt: str, path: str, shape: tuple[int, int], base_qp: int) -> Iterator[MapWriter]:
    """A writer of ``fmt`` maps into ``path``, which appears only if the block completes."""
    cls = WRITERS[fmt]
    with open_atomic(path, "wb" if cls.binary else "w") as handle:
        writer = cls(handle, shape, base_qp)
        yield writer
        writer.finish()
