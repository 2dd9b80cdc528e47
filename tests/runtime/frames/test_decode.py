"""Containers and compressed streams decoded through ffmpeg: frames as ffmpeg itself decodes
them, probed frame counts and rates, ffmpeg stopped on early close, and every failure as one
clear InputError (corrupt or truncated files, other pixel formats, frames the decoder drops)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip

W, H, FRAMES = 128, 96, 6
RATE = "30000/1001"
X265_LOSSLESS = ("-c:v", "libx265", "-x265-params", "lossless=1:log-level=error")
VP9_LOSSLESS = ("-c:v", "libvpx-vp9", "-lossless", "1")


@pytest.fixture(scope="module")
def encoders(ffmpeg) -> frozenset[str]:
    listing = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return frozenset(parts[1] for line in listing.splitlines() if len(parts := line.split()) > 1 and parts[0][0] == "V")


@pytest.fixture(scope="module")
def sources(clip, tmp_path_factory) -> dict[str, str]:
    """Raw 128x96 6-frame sources by pixel format: the 8-bit ``clip`` and a 10-bit clip."""
    folder = tmp_path_factory.mktemp("ten_bit")
    ten_bit = str(folder / "ref10.yuv")
    make_test_clip(ten_bit, str(folder / "dist10.yuv"), W, H, FRAMES, seed=5, bit_depth=10)
    return {"yuv420p": clip.ref, "yuv420p10le": ten_bit}


def encode(run_ffmpeg, source: str, pix_fmt: str, out, *codec: str, size=(W, H), rate=RATE) -> str:
    run_ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{size[0]}x{size[1]}", "-framerate", rate,
               "-i", source, *codec, str(out))
    return str(out)


def need(encoders, name):
    if name not in encoders:
        pytest.skip(f"this ffmpeg has no {name} encoder")


def read_all(reader) -> list[tuple[np.ndarray, ...]]:
    return [(f.y, f.u, f.v) for f in reader]


def children() -> set[int]:
    """Child processes of this process (running or not yet reaped)."""
    tasks = "/proc/self/task"
    return {int(pid) for task in os.listdir(tasks) for pid in Path(tasks, task, "children").read_text().split()}


def message(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# Frames, counts, rates ------------------------------------------------------------------------

@pytest.mark.parametrize("ext,pix_fmt,codec", [
    ("mkv", "yuv420p", ("-c:v", "ffv1")),
    ("mkv", "yuv420p10le", ("-c:v", "ffv1")),
    ("hevc", "yuv420p", X265_LOSSLESS),
    ("mp4", "yuv420p10le", X265_LOSSLESS),
    ("mp4", "yuv420p", ("-c:v", "libx264", "-qp", "0")),
    ("ivf", "yuv420p", VP9_LOSSLESS),
    ("webm", "yuv420p", VP9_LOSSLESS),
    ("avi", "yuv420p", ("-c:v", "rawvideo", "-pix_fmt", "nv12")),  # converted back to yuv420p
])
def test_decodes_as_ffmpeg_does(ffmpeg, run_ffmpeg, encoders, sources, tmp_path, ext, pix_fmt, codec):
    need(encoders, codec[1])
    path = encode(run_ffmpeg, sources[pix_fmt], pix_fmt, tmp_path / f"clip.{ext}", *codec)
    raw = str(tmp_path / "ffmpeg.yuv")
    run_ffmpeg("-i", path, "-f", "rawvideo", "-pix_fmt", pix_fmt, raw)
    assert Path(raw).read_bytes() == Path(sources[pix_fmt]).read_bytes()  # every encode here is lossless
    with open_video(path) as reader, open_video(raw, W, H, pix_fmt) as expected:
        assert reader.name == path and reader.frame_count == FRAMES
        assert (reader.format.width, reader.format.height, reader.format.pix_fmt) == (W, H, pix_fmt)
        assert reader.format.fps == Fraction(30000, 1001)
        got, want = read_all(reader), read_all(expected)
    assert len(got) == len(want) == FRAMES
    for got_planes, want_planes in zip(got, want):
        for a, b in zip(got_planes, want_planes):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_given_values_must_agree_with_the_stream(run_ffmpeg, clip, tmp_path):
    path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / "clip.mkv", "-c:v", "ffv1")
    with open_video(path, W, H, "yuv420p", 30000 / 1001) as reader:
        assert reader.frame_count == FRAMES
    before = children()
    with pytest.raises(InputError) as excinfo:
        open_video(path, 64, H)
    assert message(excinfo) == f"{path}: width 64 was given but the video stream says {W}"
    assert children() <= before  # its ffmpeg was stopped and reaped


def test_detected_by_magic_bytes_whatever_the_name(run_ffmpeg, clip, tmp_path):
    path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / "clip.mkv", "-c:v", "ffv1")
    renamed = tmp_path / "clip.yuv"
    os.rename(path, renamed)
    with open_video(str(renamed)) as reader:
        assert reader.frame_count == FRAMES and len(read_all(reader)) == FRAMES


def test_closing_early_stops_ffmpeg(run_ffmpeg, sources, tmp_path):
    # 6 10-bit frames are 221 KB, more than a pipe holds: ffmpeg is still writing when we stop
    path = encode(run_ffmpeg, sources["yuv420p10le"], "yuv420p10le", tmp_path / "clip.mkv", "-c:v", "ffv1")
    before = children()
    with open_video(path) as reader:
        next(iter(reader))
        assert children() - before, "ffmpeg should be running"
    assert children() <= before


# Failures ------------------------------------------------------------------------------------

def test_truncated_containers(run_ffmpeg, clip, tmp_path):
    for ext, codec in (("mp4", ("-c:v", "libx264", "-qp", "0")), ("mkv", ("-c:v", "ffv1"))):
        path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / f"clip.{ext}", *codec)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[:len(data) // 3])
        with pytest.raises(InputError) as excinfo:
            open_video(path)
        assert message(excinfo).startswith(f"{path}: ffmpeg cannot read it: ")


def test_corrupt_frame_data_fails_the_decode(run_ffmpeg, clip, tmp_path):
    """FFV1 with slice CRCs in AVI: bytes flipped inside frame 3's chunk."""
    path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / "clip.avi",
                  "-c:v", "ffv1", "-level", "3", "-slicecrc", "1")
    data = bytearray(Path(path).read_bytes())
    chunk = data.index(b"movi")
    for _ in range(4):
        chunk = data.index(b"00dc", chunk)
        start, size = chunk + 8, struct.unpack_from("<I", data, chunk + 4)[0]
        chunk = start + size
    middle = start + size // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    Path(path).write_bytes(data)
    with pytest.raises(InputError) as excinfo:
        with open_video(path) as reader:  # the probe does not decode: it passes
            read_all(reader)
    assert message(excinfo).startswith(f"{path}: ffmpeg failed decoding it: slice CRC mismatch")


def test_unsupported_pixel_format(run_ffmpeg, clip, tmp_path):
    path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / "clip.mkv", "-c:v", "ffv1", "-pix_fmt", "yuv444p")
    with pytest.raises(InputError) as excinfo:
        open_video(path)
    assert message(excinfo).startswith(f"{path}: unsupported pixel format yuv444p (supported: 4:2:0")


def test_no_video_stream(run_ffmpeg, tmp_path):
    path = str(tmp_path / "audio.mkv")
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "pcm_s16le", path)
    with pytest.raises(InputError) as excinfo:
        open_video(path)
    assert message(excinfo) == f"{path}: has no video stream"


def test_no_ffmpeg(monkeypatch, run_ffmpeg, clip, tmp_path):
    path = encode(run_ffmpeg, clip.ref, "yuv420p", tmp_path / "clip.mkv", "-c:v", "ffv1")
    monkeypatch.setenv("VQA_RT_FFMPEG", str(tmp_path / "missing"))
    with pytest.raises(BackendUnavailableError, match="not an executable file"):
        open_video(path)


# Frames the decoder drops ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("long")
    make_test_clip(str(folder / "ref.yuv"), str(folder / "dist.yuv"), W, H, 16, seed=7)
    return str(folder / "ref.yuv")


def nal_units(data: bytes) -> list[bytes]:
    """Annex-B NAL units, each with its start code (a 4-byte code's leading zero ends the unit before)."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def assert_count_error(path: str, decoded: int, packets: int):
    with pytest.raises(InputError) as excinfo:
        with open_video(path) as reader:
            assert reader.frame_count == packets
            read_all(reader)
    assert message(excinfo).startswith(f"{path}: ffmpeg decoded {decoded} of its {packets} frames (video packets)")


def test_hevc_cut_at_a_cra_loses_its_rasl_pictures(run_ffmpeg, encoders, long_clip, tmp_path):
    """An open-GOP stream cut where its second GOP starts: the RASL pictures after that CRA
    reference the GOP cut away, and the decoder drops them."""
    need(encoders, "libx265")
    params = "log-level=error:open-gop=1:keyint=8:min-keyint=8:scenecut=0:bframes=3:b-adapt=0:qp=20"
    full = encode(run_ffmpeg, long_clip, "yuv420p", tmp_path / "full.hevc", "-c:v", "libx265", "-x265-params", params)
    units = nal_units(Path(full).read_bytes())
    types = [(unit[3] >> 1) & 0x3F for unit in units]
    cra = types.index(21)
    kept = [u for u, t in zip(units[:cra], types[:cra]) if t >= 32] + units[cra:]  # parameter sets + from the CRA
    pictures = [t for t in types[cra:] if t < 32]
    rasl = sum(t in (8, 9) for t in pictures)
    assert rasl > 0
    path = str(tmp_path / "cut.hevc")
    Path(path).write_bytes(b"".join(kept))
    assert_count_error(path, len(pictures) - rasl, len(pictures))


def test_h264_without_its_first_idr_loses_the_frames_before_the_next(run_ffmpeg, encoders, long_clip, tmp_path):
    need(encoders, "libx264")
    full = encode(run_ffmpeg, long_clip, "yuv420p", tmp_path / "full.264", "-c:v", "libx264", "-g", "8", "-bf", "0")
    units = nal_units(Path(full).read_bytes())
    types = [unit[3] & 0x1F for unit in units]
    first_idr = types.index(5)
    units, types = units[:first_idr] + units[first_idr + 1:], types[:first_idr] + types[first_idr + 1:]
    pictures = [t for t in types if t in (1, 5)]
    leading = pictures.index(5)  # P pictures whose reference is gone
    assert leading > 0
    path = str(tmp_path / "cut.264")
    Path(path).write_bytes(b"".join(units))
    assert_count_error(path, len(pictures) - leading, len(pictures))


# The command line ------------------------------------------------------------------------------

def test_cli_scores_containers_as_their_raw_frames(cli, fr_export, run_ffmpeg, clip, tmp_path):
    mkv = {role: encode(run_ffmpeg, raw, "yuv420p", tmp_path / f"{role}.mkv", "-c:v", "ffv1")
           for role, raw in (("ref", clip.ref), ("dist", clip.dist))}
    runs = {
        "raw": ("-r", clip.ref, "-d", clip.dist, "-w", W, "-h", H),
        "mkv": ("-r", mkv["ref"], "-d", mkv["dist"]),
        "mkv+stdin": ("-r", mkv["ref"], "-d", "-", "-w", W, "-h", H),  # ffmpeg must not read stdin
    }
    scores = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.json"
        stdin = Path(clip.dist).read_bytes() if "-" in args else None
        result = cli("score", "--engine", fr_export.path, *args, "-o", out, stdin=stdin)
        assert result.returncode == 0, result.stderr
        data = json.loads(out.read_text())
        scores[name] = (data["frames"], data["pooled_metrics"])
    assert len(scores["raw"][0]) == FRAMES
    assert scores["mkv"] == scores["raw"] and scores["mkv+stdin"] == scores["raw"]
