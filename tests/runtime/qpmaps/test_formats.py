"""Each map format's bytes against its documented layout; atomic, all-or-nothing files."""

import os
import struct

import numpy as np
import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.qpmaps.formats import check_format, default_grid, open_map_writer

BASE_QP = 30
MAPS = [
    np.array([[-4, 0, 1], [2, -1, 4]], np.int8),
    np.array([[0, 0, -3], [3, 0, 0]], np.int8),
]


def _write(tmp_path, fmt, name, maps=MAPS):
    path = str(tmp_path / name)
    with open_map_writer(fmt, path, maps[0].shape, BASE_QP) as writer:
        for delta in maps:
            writer.write(delta)
    with open(path, "rb") as handle:
        return handle.read()


def test_npy_is_a_numpy_v1_file_of_frames_rows_cols_int8(tmp_path):
    data = _write(tmp_path, "npy", "maps.npy")
    assert data[:8] == b"\x93NUMPY\x01\x00"
    header_len = struct.unpack("<H", data[8:10])[0]
    assert 10 + header_len == 128 and data[127:128] == b"\n"
    header = data[10:128].decode("latin1")
    assert "'descr': '|i1'" in header and "'shape': (2, 2, 3)" in header
    assert data[128:] == b"".join(m.tobytes() for m in MAPS)
    loaded = np.load(tmp_path / "maps.npy")
    assert loaded.dtype == np.int8 and loaded.shape == (2, 2, 3)
    np.testing.assert_array_equal(loaded, np.stack(MAPS))


def test_csv_has_one_line_per_cell_with_the_absolute_qp(tmp_path):
    lines = _write(tmp_path, "csv", "maps.csv").decode().splitlines()
    assert lines[0] == "frame,row,col,delta_qp,qp"
    assert len(lines) == 1 + 2 * 6
    assert lines[1:4] == ["0,0,0,-4,26", "0,0,1,0,30", "0,0,2,1,31"]
    assert lines[-1] == "1,1,2,0,30"


def test_x265_is_raw_little_endian_float32_in_raster_order(tmp_path):
    data = _write(tmp_path, "x265", "maps.x265")
    assert len(data) == 2 * 6 * 4
    values = struct.unpack("<12f", data)
    assert list(values) == [float(v) for m in MAPS for v in m.ravel()]


def test_kvazaar_text_is_width_height_then_deltas_per_frame(tmp_path):
    text = _write(tmp_path, "kvazaar", "roi.txt").decode()
    assert text == "3 2\n-4 0 1\n2 -1 4\n3 2\n0 0 -3\n3 0 0\n"


def test_kvazaar_binary_is_int32_width_height_then_int8_deltas(tmp_path):
    data = _write(tmp_path, "kvazaar-bin", "roi.bin")
    frame = 8 + 6
    assert len(data) == 2 * frame
    for i, delta in enumerate(MAPS):
        chunk = data[i * frame:(i + 1) * frame]
        assert struct.unpack("<ii", chunk[:8]) == (3, 2)
        assert struct.unpack("<6b", chunk[8:]) == tuple(delta.ravel().tolist())


def test_a_failed_stream_leaves_no_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "maps.npy")
    with pytest.raises(RuntimeError, match="decoder failed"):
        with open_map_writer("npy", path, (2, 3), BASE_QP) as writer:
            writer.write(MAPS[0])
            raise RuntimeError("decoder failed")
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_replaced_only_on_success(tmp_path):
    path = tmp_path / "roi.txt"
    path.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with open_map_writer("kvazaar", str(path), (2, 3), BASE_QP) as writer:
            writer.write(MAPS[0])
            raise KeyboardInterrupt
    assert path.read_text() == "previous" and os.listdir(tmp_path) == ["roi.txt"]


def test_maps_of_another_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        with open_map_writer("x265", str(tmp_path / "m.x265"), (2, 3), BASE_QP) as writer:
            writer.write(np.zeros((3, 3), np.int8))


def test_default_grids():
    assert default_grid("kvazaar") == default_grid("kvazaar-bin") == 64
    assert default_grid("x265") == default_grid("npy") == default_grid("csv") == 16


@pytest.mark.parametrize("fmt, path, grid, message", [
    ("x265", "m.x265", 64, "grid must be 16"),
    ("kvazaar-bin", "roi.txt", 64, "ends in .bin"),
    ("kvazaar", "roi.BIN", 64, "would read a .bin file as binary"),
    ("yaml", "m.yaml", 16, "unknown QP-map format 'yaml'"),
])
def test_combinations_the_encoder_would_misread_are_refused(fmt, path, grid, message):
    with pytest.raises(InputError, match=message):
        check_format(fmt, path, grid)
