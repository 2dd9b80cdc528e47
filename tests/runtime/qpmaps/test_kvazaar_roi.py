"""End to end with a real encoder: Kvazaar (through ffmpeg's libkvazaar) takes our ROI maps.

The encoder is the libkvazaar built into the ffmpeg of the imageio-ffmpeg wheel
(here imageio-ffmpeg 0.8.1: ffmpeg n9.0.2 with Kvazaar 2.3.2). Each encode is::

    ffmpeg -v error -y -f rawvideo -pix_fmt yuv420p -s 256x128 -i clip.yuv \\
        -c:v libkvazaar -kvazaar-params preset=ultrafast,qp=32[,roi=MAP] -f hevc out.hevc

and the bitstream is decoded back with ``ffmpeg -i out.hevc -f rawvideo -pix_fmt
yuv420p``. Kvazaar applies one delta per 64x64 CTU, so the maps are written at the
Kvazaar formats' default grid of 64 (4x2 cells here).
"""

import subprocess

import numpy as np
import pytest

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.qpmap import write_qp_maps

WIDTH, HEIGHT, FRAMES, CTU = 256, 128, 2, 64


@pytest.fixture(scope="module")
def kvazaar(ffmpeg):
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if "libkvazaar" not in encoders:
        pytest.skip("this ffmpeg has no libkvazaar encoder")
    return ffmpeg


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[str, np.ndarray]:
    """Frames whose left half is a smooth pattern and right half strong noise: (path, luma planes)."""
    path = str(tmp_path_factory.mktemp("kvz") / "clip.yuv")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH // 2]
    lumas = []
    with open(path, "wb") as handle:
        for t in range(FRAMES):
            smooth = 90 + 40 * np.sin(2 * np.pi * (x + 2 * t) / 50) * np.cos(2 * np.pi * y / 40)
            noise = 128 + 50 * rng.standard_normal((HEIGHT, WIDTH // 2))
            luma = np.clip(np.concatenate([smooth, noise], axis=1), 16, 235).round().astype(np.uint8)
            handle.write(luma.tobytes() + np.full(WIDTH * HEIGHT // 2, 128, np.uint8).tobytes())
            lumas.append(luma)
    return path, np.stack(lumas)


def encode(ffmpeg: str, source: str, roi: str | None, out: str) -> tuple[bytes, np.ndarray]:
    """The HEVC bitstream Kvazaar makes of ``source`` (with the ROI file, if any) and its decoded luma."""
    params = "preset=ultrafast,qp=32" + (f",roi={roi}" if roi else "")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}",
                    "-i", source, "-c:v", "libkvazaar", "-kvazaar-params", params, "-f", "hevc", out],
                   check=True, capture_output=True)
    decoded = subprocess.run([ffmpeg, "-v", "error", "-i", out, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                             check=True, capture_output=True).stdout
    frames = np.frombuffer(decoded, np.uint8).reshape(FRAMES, -1)[:, :WIDTH * HEIGHT]
    with open(out, "rb") as handle:
        return handle.read(), frames.reshape(FRAMES, HEIGHT, WIDTH)


def ctu_mse(decoded: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """Mean squared luma error per 64x64 CTU over all frames, shape (rows, cols)."""
    error = (decoded.astype(float) - luma) ** 2
    return error.reshape(FRAMES, HEIGHT // CTU, CTU, WIDTH // CTU, CTU).mean(axis=(0, 2, 4))


def uniform_map(path, delta: int, binary: bool = False) -> str:
    cells = np.full((HEIGHT // CTU, WIDTH // CTU), delta, np.int8)
    if binary:
        frame = np.array([cells.shape[1], cells.shape[0]], "<i4").tobytes() + cells.tobytes()
        path.write_bytes(frame * FRAMES)
    else:
        path.write_text(f"{cells.shape[1]} {cells.shape[0]}\n{' '.join(map(str, cells.ravel()))}\n" * FRAMES)
    return str(path)


def test_uniform_maps_move_the_bitstream_size_the_right_way(kvazaar, source, tmp_path):
    sizes = {}
    for name, roi in (("-4", uniform_map(tmp_path / "m4.txt", -4)), ("none", None),
                      ("+4", uniform_map(tmp_path / "p4.txt", 4))):
        sizes[name] = len(encode(kvazaar, source[0], roi, str(tmp_path / "out.hevc"))[0])
    assert sizes["-4"] > 1.2 * sizes["none"] and sizes["+4"] < 0.8 * sizes["none"], sizes


def test_our_text_and_binary_files_are_the_same_map_to_kvazaar(kvazaar, source, tmp_path):
    video = VideoInput(source[0], WIDTH, HEIGHT)
    write_qp_maps(video, str(tmp_path / "roi.txt"), "kvazaar", method="activity")
    write_qp_maps(video, str(tmp_path / "roi.bin"), "kvazaar-bin", method="activity")
    from_text = encode(kvazaar, source[0], str(tmp_path / "roi.txt"), str(tmp_path / "text.hevc"))[0]
    from_binary = encode(kvazaar, source[0], str(tmp_path / "roi.bin"), str(tmp_path / "binary.hevc"))[0]
    reference = encode(kvazaar, source[0], uniform_map(tmp_path / "u.bin", -4, binary=True),
                       str(tmp_path / "u.hevc"))[0]
    assert from_text == from_binary != reference


def test_an_activity_map_moves_error_from_smooth_to_noisy_ctus(kvazaar, source, tmp_path):
    path, luma = source
    roi = str(tmp_path / "roi.txt")
    summary = write_qp_maps(VideoInput(path, WIDTH, HEIGHT), roi, "kvazaar", method="activity")
    first = np.array(open(roi).read().split()[2:2 + 8], int).reshape(2, 4)
    assert np.all(first[:, :2] < 0) and np.all(first[:, 2:] == 4), first  # smooth half: more bits
    assert summary["map"] == {"rows": 2, "cols": 4, "grid": 64, "format": "kvazaar", "output": roi}
    plain_bits, plain = encode(kvazaar, path, None, str(tmp_path / "plain.hevc"))
    mapped_bits, mapped = encode(kvazaar, path, roi, str(tmp_path / "mapped.hevc"))
    ratio = ctu_mse(mapped, luma) / ctu_mse(plain, luma)
    assert np.all(ratio[:, :2] < 0.9) and np.all(ratio[:, 2:] > 1.3), ratio
    assert len(mapped_bits) < len(plain_bits)


def text_map(path, cells: np.ndarray) -> str:
    path.write_text(f"{cells.shape[1]} {cells.shape[0]}\n{' '.join(map(str, cells.ravel()))}\n" * FRAMES)
    return str(path)


def test_kvazaar_reads_one_delta_per_ctu_the_top_left_cell_of_a_finer_map(kvazaar, source, tmp_path):
    """Kvazaar 2.3's ROI granularity, measured: a 16x16-pixel map is point-sampled at each CTU's top-left cell.

    So a grid-16 map gives the same bitstream as the grid-64 map of its top-left cells, whatever its other
    cells hold; that is why the Kvazaar formats default to grid 64 (vqa-rt averages the cells a CTU covers).
    """
    rng = np.random.default_rng(3)
    fine = rng.integers(-4, 5, (HEIGHT // 16, WIDTH // 16)).astype(np.int8)
    top_left = fine[::4, ::4]
    scrambled = rng.integers(-4, 5, fine.shape).astype(np.int8)
    scrambled[::4, ::4] = top_left
    assert not np.array_equal(scrambled, fine)
    streams = [encode(kvazaar, source[0], text_map(tmp_path / f"{name}.txt", cells), str(tmp_path / f"{name}.hevc"))[0]
               for name, cells in (("fine", fine), ("coarse", top_left), ("scrambled", scrambled))]
    assert streams[0] == streams[1] == streams[2]
    shifted = fine.copy()
    shifted[0, 0] = -4 if fine[0, 0] != -4 else 4  # a CTU's top-left cell does change the bitstream
    assert encode(kvazaar, source[0], text_map(tmp_path / "shifted.txt", shifted), str(tmp_path / "s.hevc"))[0] \
        != streams[0]
