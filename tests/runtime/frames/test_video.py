"""Raw YUV and Y4M readers: round trips, streaming sources, ffmpeg interop, bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import types
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.frames.video import PIX_FMTS, VideoFormat

W, H = 8, 6


def random_planes(n, bit_depth=8, seed=0, width=W, height=H):
    """``n`` frames of (y, u, v) covering the full sample range (0..1023 for 10-bit)."""
    rng = np.random.default_rng(seed)
    dtype, top = (np.uint8, 256) if bit_depth == 8 else (np.uint16, 1 << 10)
    return [tuple(rng.integers(0, top, shape, dtype=dtype)
                  for shape in ((height, width), (height // 2, width // 2),
                                (height // 2, width // 2))) for _ in range(n)]


def raw_bytes(frames):
    return b"".join(p.astype(p.dtype.newbyteorder("<")).tobytes() for f in frames for p in f)


def y4m_bytes(frames, header="W8 H6 F25:1 Ip A1:1 C420jpeg", frame_header="FRAME"):
    body = b"".join((frame_header + "\n").encode() + raw_bytes([f]) for f in frames)
    return f"YUV4MPEG2 {header}\n".encode() + body


def write(path, data):
    path.write_bytes(data)
    return str(path)


def assert_frames_equal(reader, expected):
    frames = list(reader)
    assert [f.index for f in frames] == list(range(len(expected)))
    for frame, planes in zip(frames, expected):
        for got, want in zip((frame.y, frame.u, frame.v), planes):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def fake_stdin(monkeypatch, data):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(
        buffer=io.BufferedReader(io.BytesIO(data))))


def error_message(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# Round trips ------------------------------------------------------------------------

@pytest.mark.parametrize("bit_depth,pix_fmt", [(8, "yuv420p"), (10, "yuv420p10le")])
def test_raw_round_trip(tmp_path, bit_depth, pix_fmt):
    frames = random_planes(3, bit_depth)
    path = write(tmp_path / "clip.yuv", raw_bytes(frames))
    with open_video(path, W, H, pix_fmt if bit_depth == 10 else None) as reader:
        assert reader.format == VideoFormat(W, H, bit_depth, None, None, pix_fmt)
        assert reader.format.frame_bytes == {8: 72, 10: 144}[bit_depth]
        assert reader.frame_count == 3
        assert_frames_equal(reader, frames)


@pytest.mark.parametrize("plane, value", [(0, 1024), (1, 0xFFFF), (2, 2000)])
def test_ten_bit_samples_above_1023_are_refused_naming_frame_and_plane(tmp_path, plane, value):
    frames = random_planes(3, 10)
    frames[1][plane][-1, -1] = value
    frames[2][0][0, 0] = 4000  # a later bad frame is not the one named
    with open_video(write(tmp_path / "c.yuv", raw_bytes(frames)), W, H, "yuv420p10le") as r:
        frames_read = iter(r)
        assert next(frames_read).index == 0
        with pytest.raises(InputError) as excinfo:
            next(frames_read)
    assert error_message(excinfo) == (f"{tmp_path / 'c.yuv'}: frame 1, plane {'YUV'[plane]}: sample {value} is above "
                                      "1023, outside 10-bit range (is this 8-bit video read as yuv420p10le?)")


def test_reader_is_single_pass_and_closes(tmp_path):
    reader = open_video(write(tmp_path / "c.yuv", raw_bytes(random_planes(1))), W, H)
    with reader:
        list(reader)
        with pytest.raises(RuntimeError, match="only once"):
            iter(reader)
    assert reader._stream.closed


def test_stdin_raw_stream(monkeypatch):
    frames = random_planes(4)
    fake_stdin(monkeypatch, raw_bytes(frames))
    with open_video("-", W, H) as reader:
        assert reader.frame_count is None
        assert reader.name == "<stdin>"
        assert_frames_equal(reader, frames)
    assert not sys.stdin.buffer.closed


def test_stdin_y4m_detected_by_magic(monkeypatch):
    frames = random_planes(2)
    fake_stdin(monkeypatch, y4m_bytes(frames))
    with open_video("-") as reader:
        assert reader.frame_count is None
        assert (reader.format.width, reader.format.height) == (W, H)
        assert_frames_equal(reader, frames)


def test_stdin_through_a_real_pipe(tmp_path):
    frames = random_planes(5, width=64, height=32)
    code = ("from vqa_rt.runtime.frames.sources import open_video\n"
            "r = open_video('-', 64, 32)\n"
            "print(r.frame_count, sum(int(f.y.sum()) + int(f.u.sum()) + int(f.v.sum()) "
            "for f in r))")
    out = subprocess.run([sys.executable, "-c", code], input=raw_bytes(frames),
                         capture_output=True, check=True, timeout=60).stdout.decode().split()
    assert out == ["None", str(sum(int(p.sum()) for f in frames for p in f))]


def test_fifo_streams_with_unknown_count(tmp_path):
    frames = random_planes(3)
    fifo = str(tmp_path / "pipe.yuv")
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: open(fifo, "wb").write(raw_bytes(frames)))
    writer.start()
    with open_video(fifo, W, H) as reader:
        assert reader.frame_count is None
        assert_frames_equal(reader, frames)
    writer.join()


# Y4M --------------------------------------------------------------------------------

def test_y4m_header_fields_and_frame_parameters(tmp_path):
    frames = random_planes(3, 10)
    data = y4m_bytes(frames, "W8 H6 F30000:1001 It A10:11 C420p10 XYSCSS=420P10 "
                             "XCOLORRANGE=FULL", frame_header="FRAME Ib XFOO=1")
    with open_video(write(tmp_path / "clip.dat", data)) as reader:
        assert reader.format == VideoFormat(W, H, 10, Fraction(30000, 1001), "full",
                                            "yuv420p10le")
        assert reader.frame_count == 3  # counted by scanning the FRAME headers
        assert_frames_equal(reader, frames)


@pytest.mark.parametrize("colorspace", ["420", "420jpeg", "420paldv", "420mpeg2"])
def test_y4m_eight_bit_colour_spaces(tmp_path, colorspace):
    frames = random_planes(2)
    data = y4m_bytes(frames, f"W8 H6 F25:1 C{colorspace} XCOLORRANGE=LIMITED")
    with open_video(write(tmp_path / "c.y4m", data), W, H, "yuv420p") as reader:
        assert reader.format == VideoFormat(W, H, 8, Fraction(25), "limited", "yuv420p")
        assert reader.frame_count == 2  # counted from the size
        assert_frames_equal(reader, frames)


def test_y4m_defaults_without_c_and_f(tmp_path):
    with open_video(write(tmp_path / "c.y4m", y4m_bytes(random_planes(1), "W8 H6"))) as r:
        assert r.format == VideoFormat(W, H, 8, None, None, "yuv420p")


def test_y4m_from_ffmpeg_matches_raw(tmp_path):
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    raw = str(tmp_path / "ref.yuv")
    make_test_clip(raw, str(tmp_path / "dist.yuv"), 64, 48, 3, seed=3)
    source = [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "64x48",
              "-i", raw]
    outputs = {"8.y4m": [], "10.y4m": ["-pix_fmt", "yuv420p10le", "-strict", "-1"],
               "10.yuv": ["-f", "rawvideo", "-pix_fmt", "yuv420p10le"]}
    for name, args in outputs.items():
        subprocess.run(source + args + [str(tmp_path / name)], check=True, timeout=60)
    with open_video(raw, 64, 48) as reader:
        expected = [(f.y, f.u, f.v) for f in reader]
    with open_video(str(tmp_path / "8.y4m")) as reader:
        assert reader.format.fps == Fraction(25) and reader.frame_count == 3
        assert_frames_equal(reader, expected)
    for reader in (open_video(str(tmp_path / "10.y4m"), 64, 48),
                   open_video(str(tmp_path / "10.yuv"), 64, 48, "yuv420p10le")):
        with reader:
            assert reader.format.bit_depth == 10 and reader.frame_count == 3
            for frame, planes in zip(reader, expected, strict=True):
                for got, want in zip((frame.y, frame.u, frame.v), planes):
                    assert got.dtype == np.uint16
                    assert np.abs(got / 4 - want).max() <= 1


def test_synthetic_clip_is_deterministic_and_really_distorted(tmp_path):
    paths = [str(tmp_path / n) for n in ("r1.yuv", "d1.yuv", "r2.yuv", "d2.yuv", "r3.yuv",
                                         "d3.yuv")]
    fmt = make_test_clip(paths[0], paths[1], 64, 48, 4, seed=5)
    assert fmt == VideoFormat(64, 48, 8, Fraction(25), "limited", "yuv420p")
    make_test_clip(paths[2], paths[3], 64, 48, 4, seed=5)
    make_test_clip(paths[4], paths[5], 64, 48, 4, seed=6, distortion="none")
    data = [open(p, "rb").read() for p in paths]
    assert data[0] == data[2] and data[1] == data[3]  # same seed, same bytes
    assert data[4] == data[5] and data[4] != data[0]  # no distortion; another seed
    ref, dist = (np.frombuffer(d, np.uint8).astype(float) for d in data[:2])
    psnr = 10 * np.log10(255 ** 2 / np.mean((ref - dist) ** 2))
    assert 25 < psnr < 45
    frames = np.frombuffer(data[0], np.uint8).reshape(4, -1)
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1  # the scene moves


# Bad input --------------------------------------------------------------------------

def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(InputError) as e:
        open_video(str(tmp_path / "nope.yuv"), W, H)
    assert error_message(e) == f"{tmp_path / 'nope.yuv'}: no such file"
    with pytest.raises(InputError, match="empty.yuv: is empty"):
        open_video(write(tmp_path / "empty.yuv", b""), W, H)
    with pytest.raises(InputError, match="is a directory"):
        open_video(str(tmp_path), W, H)


def test_size_not_whole_frames(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "ref.yuv", bytes(1_000_000))
    with pytest.raises(InputError) as e:
        open_video("ref.yuv", 1920, 1080)
    assert error_message(e) == (
        "ref.yuv: size 1000000 bytes is not a whole number of 1920x1080 yuv420p frames "
        "(3110400 bytes each): 0 whole frames and 1000000 bytes remain")


@pytest.mark.parametrize("width,height", [(7, 6), (8, 5), (0, 6), (-8, 6)])
def test_bad_dimensions(tmp_path, width, height):
    path = write(tmp_path / "c.yuv", raw_bytes(random_planes(1)))
    with pytest.raises(InputError) as e:
        open_video(path, width, height)
    assert f"c.yuv: width and height must be positive and even for 4:2:0, got " \
           f"{width}x{height}" in error_message(e)


def test_raw_without_dimensions(tmp_path):
    with pytest.raises(InputError, match=r"c.yuv: raw YUV input needs width and height"):
        open_video(write(tmp_path / "c.yuv", raw_bytes(random_planes(1))))


def test_unsupported_pixel_format_argument(tmp_path):
    with pytest.raises(InputError) as e:
        open_video(write(tmp_path / "c.yuv", b"x"), W, H, "yuv444p")
    message = error_message(e)
    assert "c.yuv: unsupported pixel format 'yuv444p'" in message
    assert all(p in message for p in PIX_FMTS)


@pytest.mark.parametrize("colorspace", ["444", "422", "mono", "420p12", "444alpha"])
def test_unsupported_y4m_colour_space(tmp_path, colorspace):
    path = write(tmp_path / "c.y4m", y4m_bytes(random_planes(1), f"W8 H6 C{colorspace}"))
    with pytest.raises(InputError) as e:
        open_video(path)
    message = error_message(e)
    assert f"c.y4m: unsupported Y4M pixel format C{colorspace}" in message
    assert "C420jpeg" in message and "C420p10" in message


@pytest.mark.parametrize("header,problem", [
    ("H6 C420", "no W (width) field"),
    ("W8 C420", "no H (height) field"),
    ("Wabc H6", "Wabc is not a whole number"),
    ("W8 H6 F25", "frame rate F25 is not of the form F<num>:<den>"),
    ("W8 H6 F25:0", "frame rate F25:0 is not a positive ratio"),
    ("W8 H6 XCOLORRANGE=WIDE", "unknown XCOLORRANGE=WIDE"),
])
def test_malformed_y4m_header(tmp_path, header, problem):
    path = write(tmp_path / "c.y4m", y4m_bytes(random_planes(1), header))
    with pytest.raises(InputError) as e:
        open_video(path)
    assert error_message(e).startswith(f"{path}: malformed Y4M header: {problem}")


def test_y4m_header_without_newline(tmp_path):
    path = write(tmp_path / "c.y4m", b"YUV4MPEG2 W8 H6" + b" X" * 3000)
    with pytest.raises(InputError, match="malformed Y4M header: no end of line"):
        open_video(path)


def test_y4m_extension_without_magic(tmp_path):
    path = write(tmp_path / "c.Y4M", raw_bytes(random_planes(1)))
    with pytest.raises(InputError, match="c.Y4M: malformed Y4M file: it does not start with"):
        open_video(path, W, H)


@pytest.mark.parametrize("given,what", [((10, None, None), "width 10"),
                                         ((None, 8, None), "height 8"),
                                         ((None, None, "yuv420p10le"),
                                          "pixel format yuv420p10le")])
def test_y4m_disagreeing_arguments(tmp_path, given, what):
    path = write(tmp_path / "c.y4m", y4m_bytes(random_planes(1)))
    with pytest.raises(InputError, match=f"c.y4m: {what} was given but the Y4M header says"):
        open_video(path, *given)


def test_y4m_file_truncated_frame(tmp_path):
    path = write(tmp_path / "c.y4m", y4m_bytes(random_planes(2))[:-5])
    with pytest.raises(InputError, match=r"c.y4m: frame 1 is truncated \(67 of 72 bytes\)"):
        open_video(path)


def test_y4m_file_with_no_frames(tmp_path):
    with pytest.raises(InputError, match="c.y4m: has no frames"):
        open_video(write(tmp_path / "c.y4m", b"YUV4MPEG2 W8 H6\n"))


def test_y4m_bad_frame_header(tmp_path):
    data = y4m_bytes(random_planes(2)).replace(b"FRAME\n", b"FRAMX\n")
    with pytest.raises(InputError, match="c.y4m: frame 0 has a malformed FRAME header"):
        open_video(write(tmp_path / "c.y4m", data))


@pytest.mark.parametrize("make,cut,match", [
    (raw_bytes, 10, r"<stdin>: frame 2 is truncated \(62 of 72 bytes\)"),
    (y4m_bytes, 10, r"<stdin>: frame 2 is truncated \(62 of 72 bytes\)"),
    (y4m_bytes, 75, r"<stdin>: frame 2 is truncated \(inside its FRAME header\)"),
])
def test_stream_truncated_frame(monkeypatch, make, cut, match):
    fake_stdin(monkeypatch, make(random_planes(3))[:-cut])
    frames = iter(open_video("-", W, H))
    assert [next(frames).index, next(frames).index] == [0, 1]
    with pytest.raises(InputError, match=match):
        next(frames)


def test_empty_stdin(monkeypatch):
    fake_stdin(monkeypatch, b"")
    with pytest.raises(InputError, match="<stdin>: is empty"):
        open_video("-", W, H)


def test_y4m_stream_with_no_frames(monkeypatch):
    fake_stdin(monkeypatch, b"YUV4MPEG2 W8 H6\n")
    with pytest.raises(InputError, match="<stdin>: has no frames"):
        list(open_video("-"))
