"""YUV to RGB: against ffmpeg, against the matrix inverse, flat colours, 10-bit, resize."""

from __future__ import annotations

import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from vqa_rt.runtime.frames.color import MATRICES, normalize, yuv_to_rgb
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.frames.video import Frame

KR_KB = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


def flat(y, u, v, bit_depth=8, width=4, height=2):
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    chroma = (height // 2, width // 2)
    return Frame(0, np.full((height, width), y, dtype), np.full(chroma, u, dtype),
                 np.full(chroma, v, dtype), bit_depth)


def read_clip(path, width, height, pix_fmt="yuv420p"):
    with open_video(str(path), width, height, pix_fmt) as reader:
        return list(reader)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 96x64 3-frame clip at 8 and 10 bits (same content)."""
    root = tmp_path_factory.mktemp("clip")
    make_test_clip(str(root / "r8.yuv"), str(root / "d8.yuv"), 96, 64, 3, seed=1)
    make_test_clip(str(root / "r10.yuv"), str(root / "d10.yuv"), 96, 64, 3, seed=1, bit_depth=10)
    return root


@pytest.mark.parametrize("matrix", MATRICES)
def test_matches_ffmpeg(clip, matrix):
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    # full_chroma_int + bilinear: swscale interpolates chroma (centre-sited, as we do)
    # instead of replicating it; accurate_rnd avoids its fast fixed-point path.
    vf = (f"scale=in_color_matrix={matrix}:in_range=tv:out_range=pc:"
          "flags=bilinear+accurate_rnd+full_chroma_int,format=rgb24")
    out = subprocess.run([ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                          "-s", "96x64", "-i", str(clip / "r8.yuv"), "-vf", vf,
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True, timeout=60).stdout
    expected = np.frombuffer(out, np.uint8).reshape(3, 64, 96, 3).astype(np.float32)
    frames = read_clip(clip / "r8.yuv", 96, 64)
    ours = np.stack([yuv_to_rgb(f, matrix) for f in frames]).transpose(0, 2, 3, 1) * 255
    diff = np.abs(ours - expected)
    assert diff.mean() <= 1.0 and np.percentile(diff, 99) <= 3
    other = "bt601" if matrix == "bt709" else "bt709"
    wrong = np.stack([yuv_to_rgb(f, other) for f in frames]).transpose(0, 2, 3, 1) * 255
    assert np.percentile(np.abs(wrong - expected), 99) > 5  # ffmpeg really used `matrix`


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("color_range,bit_depth", [("limited", 8), ("full", 8),
                                                   ("limited", 10), ("full", 10)])
def test_inverts_the_forward_matrix(matrix, color_range, bit_depth):
    """Random in-gamut RGB, encoded by the textbook forward matrix, decodes back."""
    kr, kb = KR_KB[matrix]
    forward = np.array([[kr, 1 - kr - kb, kb],
                        [-kr / (2 - 2 * kb), -(1 - kr - kb) / (2 - 2 * kb), 0.5],
                        [0.5, -(1 - kr - kb) / (2 - 2 * kr), -kb / (2 - 2 * kr)]])
    step, peak = 1 << (bit_depth - 8), (1 << bit_depth) - 1
    for rgb in np.random.default_rng(0).uniform(0.05, 0.95, (20, 3)):
        y, cb, cr = forward @ rgb
        if color_range == "limited":
            codes = (16 + 219 * y) * step, (128 + 224 * cb) * step, (128 + 224 * cr) * step
            tolerance = 0.5 / (219 * step) * 3
        else:
            codes = y * peak, cb * peak + (1 << (bit_depth - 1)), cr * peak + (1 << (bit_depth - 1))
            tolerance = 0.5 / peak * 3
        frame = flat(*np.round(codes), bit_depth)
        out = yuv_to_rgb(frame, matrix, color_range)
        assert out.dtype == np.float32 and out.shape == (3, 2, 4)
        np.testing.assert_allclose(out[:, 0, 0], rgb, atol=tolerance)
        assert np.ptp(out, axis=(1, 2)).max() == 0  # flat in, flat out


@pytest.mark.parametrize("matrix", MATRICES)
def test_flat_colours(matrix):
    black, white = [0, 0, 0], [1, 1, 1]
    for frame, color_range, expected in [
        (flat(16, 128, 128), "limited", black), (flat(235, 128, 128), "limited", white),
        (flat(64, 512, 512, 10), "limited", black), (flat(940, 512, 512, 10), "limited", white),
        (flat(0, 128, 128), "full", black), (flat(255, 128, 128), "full", white),
        (flat(1023, 512, 512, 10), "full", white),
        (flat(0, 128, 128), "limited", black), (flat(255, 128, 128), "limited", white),  # clipped
    ]:
        np.testing.assert_allclose(yuv_to_rgb(frame, matrix, color_range)[:, 0, 0], expected,
                                   atol=1e-6)


def test_bt709_primaries():
    # BT.709 limited-range codes of pure red, green and blue (rounded).
    for codes, rgb in [((63, 102, 240), (1, 0, 0)), ((173, 42, 26), (0, 1, 0)),
                       ((32, 240, 118), (0, 0, 1))]:
        np.testing.assert_allclose(yuv_to_rgb(flat(*codes))[:, 0, 0], rgb, atol=2 / 255)
    # The same red codes read as BT.601 are visibly not pure red (R = 0.916).
    assert yuv_to_rgb(flat(63, 102, 240), "bt601")[0, 0, 0] < 0.95


def test_ten_bit_matches_eight_bit(clip):
    # Worst case of the 8-bit rounding (half a code in Y and in Cb, through B = Y' +
    # 1.8556 Cb'), plus a quarter of it for the 10-bit rounding.
    bound = 1.25 * (0.5 / 219 + 1.8556 * 0.5 / 224)
    for f8, f10 in zip(read_clip(clip / "r8.yuv", 96, 64),
                       read_clip(clip / "r10.yuv", 96, 64, "yuv420p10le"), strict=True):
        assert f10.y.dtype == np.uint16 and f10.y.max() > 255
        diff = np.abs(yuv_to_rgb(f10) - yuv_to_rgb(f8))
        assert diff.mean() <= 0.5 / 255 and diff.max() <= bound
        # The 8-bit codes shifted to 10 bits give the same RGB.
        shifted = Frame(0, *(p.astype(np.uint16) * 4 for p in (f8.y, f8.u, f8.v)), 10)
        np.testing.assert_allclose(yuv_to_rgb(shifted), yuv_to_rgb(f8), atol=1e-6)


def test_resize(clip):
    frame = read_clip(clip / "r8.yuv", 96, 64)[0]
    full = yuv_to_rgb(frame)
    small = yuv_to_rgb(frame, size=(48, 30))
    assert small.shape == (3, 30, 48) and small.dtype == np.float32
    np.testing.assert_allclose(
        small, [cv2.resize(p, (48, 30), interpolation=cv2.INTER_AREA) for p in full], atol=1e-6)
    large = yuv_to_rgb(frame, size=(150, 100))
    assert large.shape == (3, 100, 150)
    np.testing.assert_allclose(
        large, [cv2.resize(p, (150, 100), interpolation=cv2.INTER_LINEAR) for p in full],
        atol=1e-6)
    assert 0 <= large.min() and large.max() <= 1
    np.testing.assert_array_equal(yuv_to_rgb(frame, size=(96, 64)), full)


@pytest.mark.parametrize("size", [None, (48, 30)])
def test_converts_into_a_given_batch_row(clip, size):
    frame = read_clip(clip / "r8.yuv", 96, 64)[0]
    alone = yuv_to_rgb(frame, size=size)
    batch = np.full((2, *alone.shape), np.nan, np.float32)
    assert np.shares_memory(yuv_to_rgb(frame, size=size, out=batch[1]), batch)
    np.testing.assert_array_equal(batch[1], alone)
    assert np.isnan(batch[0]).all()
    with pytest.raises(ValueError, match=r"out must be float32 of shape \(3, 64, 96\)"):
        yuv_to_rgb(frame, out=np.empty((3, 64, 95), np.float32))


def test_rejects_unknown_options():
    with pytest.raises(ValueError, match="colour matrix 'bt2020'"):
        yuv_to_rgb(flat(16, 128, 128), "bt2020")
    with pytest.raises(ValueError, match="colour range 'tv'"):
        yuv_to_rgb(flat(16, 128, 128), color_range="tv")
    with pytest.raises(ValueError, match="analysis size must be positive, got 0x4"):
        yuv_to_rgb(flat(16, 128, 128), size=(0, 4))


def test_normalize_per_channel_in_place():
    rgb = np.stack([np.full((2, 3), v, np.float32) for v in (0.2, 0.5, 0.8)])
    out = normalize(rgb, mean=(0.1, 0.5, 0.4), std=(0.5, 0.25, 2.0))
    assert out is rgb and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0.2, 0.0, 0.2], atol=1e-6)
    batch = normalize(np.ones((2, 3, 2, 2), np.float64), (0, 0.5, 1), (1, 1, 1))
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch[1, :, 1, 1], [1, 0.5, 0])
