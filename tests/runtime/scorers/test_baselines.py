"""Baseline metrics against independent implementations: ffmpeg's psnr filter, libvmaf's
float_ssim/float_ms_ssim/vmaf (through the same ffmpeg), scikit-image's SSIM."""

import json
import os
import re
import stat
import subprocess

import numpy as np
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError, ModelError
from vqa_rt.runtime.frames.ffmpeg import ENV_VAR
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput, open_video
from vqa_rt.runtime.pipeline.score import score
from vqa_rt.runtime.scorers.baselines import metrics

W, H, FRAMES = 192, 176, 4  # MS-SSIM needs 176 pixels a side
PIX_FMTS = {8: "yuv420p", 10: "yuv420p10le"}


@pytest.fixture(scope="module", params=[8, 10], ids=["8bit", "10bit"])
def pair(request, tmp_path_factory):
    """A reference and a JPEG+blur-degraded copy, made at the given bit depth."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    bits = request.param
    folder = tmp_path_factory.mktemp(f"baseline{bits}")
    ref, dist = str(folder / "ref.yuv"), str(folder / "dist.yuv")
    make_test_clip(ref, dist, W, H, FRAMES, seed=5, bit_depth=bits, distortion="jpeg+blur", quality=25)
    return bits, VideoInput(ref, W, H, PIX_FMTS[bits]), VideoInput(dist, W, H, PIX_FMTS[bits])


def _raw_input(video: VideoInput) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", video.pix_fmt, "-s", f"{video.width}x{video.height}", "-i", video.path]


def _ffmpeg_graph(ffmpeg, ref, dist, graph, cwd) -> None:
    """Run a two-input filter graph: [0] distorted (ffmpeg's 'main'), [1] reference."""
    subprocess.run([ffmpeg, "-v", "error", "-y", *_raw_input(dist), *_raw_input(ref), "-lavfi", graph, "-f", "null", "-"],
                   check=True, cwd=cwd)


@pytest.fixture(scope="module")
def libvmaf_log(pair, ffmpeg, tmp_path_factory):
    """libvmaf's per-frame metrics: vmaf, float_ssim without downsampling, float_ms_ssim."""
    _, ref, dist = pair
    folder = tmp_path_factory.mktemp("libvmaf")
    features = "feature='name=float_ssim\\:scale=1|name=float_ms_ssim'"
    _ffmpeg_graph(ffmpeg, ref, dist, f"[0:v][1:v]libvmaf=log_fmt=json:log_path=log.json:{features}", folder)
    return [frame["metrics"] for frame in json.loads((folder / "log.json").read_text())["frames"]]


def _values(result):
    metric = result["model"]["metric"]
    return np.array([frame["metrics"][metric] for frame in result["frames"]])


def test_psnr_equals_ffmpeg_psnr_filter(pair, ffmpeg, tmp_path):
    bits, ref, dist = pair
    _ffmpeg_graph(ffmpeg, ref, dist, "[0:v][1:v]psnr,metadata=mode=print:file=psnr.txt", tmp_path)
    expected = [float(v) for v in re.findall(r"lavfi\.psnr\.psnr\.y=([\d.]+)", (tmp_path / "psnr.txt").read_text())]
    ours = _values(score("psnr", ref, dist))
    assert len(expected) == FRAMES
    np.testing.assert_allclose(ours, expected, atol=0.01)
    assert 20 < ours.min() < ours.max() < 50


def test_ssim_equals_libvmaf_float_ssim_and_scikit_image(pair, libvmaf_log):
    from skimage.metrics import structural_similarity

    bits, ref, dist = pair
    ours = _values(score("ssim", ref, dist))
    np.testing.assert_allclose(ours, [m["float_ssim"] for m in libvmaf_log], atol=1e-3)
    with open_video(ref.path, W, H, ref.pix_fmt) as refs, open_video(dist.path, W, H, dist.pix_fmt) as dists:
        skimage = [structural_similarity(metrics.to_8bit_scale(r.y, bits), metrics.to_8bit_scale(d.y, bits),
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
                   for r, d in zip(refs, dists)]
    np.testing.assert_allclose(ours, skimage, atol=1e-4)
    assert 0.5 < ours.min() < ours.max() < 0.99


def test_ms_ssim_equals_libvmaf_float_ms_ssim(pair, libvmaf_log):
    _, ref, dist = pair
    ours = _values(score("ms-ssim", ref, dist))
    np.testing.assert_allclose(ours, [m["float_ms_ssim"] for m in libvmaf_log], atol=1e-3)
    assert 0.8 < ours.min() < ours.max() < 0.999


def test_vmaf_streamed_through_pipes_equals_libvmaf_on_the_files(pair, libvmaf_log):
    _, ref, dist = pair
    result = score("vmaf", ref, dist)
    np.testing.assert_allclose(_values(result), [m["vmaf"] for m in libvmaf_log], atol=1e-4)
    assert result["model"]["backend"] == "ffmpeg-libvmaf" and result["complete"]


def test_ffmpeg_ssim_filter_is_a_different_definition(pair, ffmpeg, tmp_path):
    """ffmpeg's ssim filter is x264's: unweighted 8x8 windows on a 4-pixel grid. It ranks
    frames like the Gaussian SSIM but reads higher, so it is not our oracle."""
    _, ref, dist = pair
    _ffmpeg_graph(ffmpeg, ref, dist, "[0:v][1:v]ssim,metadata=mode=print:file=ssim.txt", tmp_path)
    theirs = np.array([float(v) for v in re.findall(r"lavfi\.ssim\.Y=([\d.]+)", (tmp_path / "ssim.txt").read_text())])
    ours = _values(score("ssim", ref, dist))
    assert np.all(np.abs(theirs - ours) < 0.05)
    assert np.all(theirs > ours)


def test_identical_videos_reach_each_metrics_best_value(pair):
    bits, ref, _ = pair
    assert np.all(_values(score("psnr", ref, ref)) == 6 * bits + 12)  # libvmaf's cap, not ffmpeg's inf
    for engine in ("ssim", "ms-ssim"):
        np.testing.assert_allclose(_values(score(engine, ref, ref)), 1.0, atol=1e-6)


def test_results_are_libvmaf_shaped_and_name_their_metric(pair):
    bits, ref, dist = pair
    for engine, metric, label in (("psnr", "psnr_y", "PSNR-Y"), ("ssim", "ssim_y", "SSIM-Y"),
                                  ("ms-ssim", "ms_ssim_y", "MS-SSIM-Y"), ("vmaf", "vmaf", "VMAF")):
        result = score(engine, ref, dist, ScoreOptions(frame_skip=1, frame_stride=2))
        model = result["model"]
        assert (model["metric"], model["label"], model["kind"], model["untrained"]) == (metric, label, "baseline", False)
        assert [f["frameNum"] for f in result["frames"]] == [1, 3]
        assert result["pooled_metrics"][metric]["mean"] == pytest.approx(_values(result).mean())
        json.dumps(result)  # plain floats only


def test_analysis_size_resizes_luma_before_measuring(pair):
    import cv2

    bits, ref, dist = pair
    result = score("psnr", ref, dist, ScoreOptions(analysis_size=(96, 88), max_frames=1))
    with open_video(ref.path, W, H, ref.pix_fmt) as refs, open_video(dist.path, W, H, dist.pix_fmt) as dists:
        r, d = (cv2.resize(next(iter(v)).y, (96, 88), interpolation=cv2.INTER_AREA) for v in (refs, dists))
    assert _values(result)[0] == pytest.approx(metrics.psnr(r, d, bits))


def test_bad_engines_and_inputs_are_refused_before_scoring(clip, tmp_path):
    ref, dist = VideoInput(clip.ref, clip.width, clip.height), VideoInput(clip.dist, clip.width, clip.height)
    with pytest.raises(ModelError, match="unknown engine 'psnrr'.*psnr, ssim, ms-ssim, vmaf"):
        score("psnrr", ref, dist)
    with pytest.raises(InputError, match="ms-ssim: frames of 128x96 are too small; it needs at least 176"):
        score("ms-ssim", ref, dist)
    ten_bit = tmp_path / "ref10.yuv"
    ten_bit.write_bytes(np.fromfile(clip.ref, np.uint8).astype("<u2").tobytes())
    with pytest.raises(InputError, match="reference is 10-bit but distorted is 8-bit"):
        score("psnr", VideoInput(str(ten_bit), clip.width, clip.height, "yuv420p10le"), dist)


def test_an_ffmpeg_without_libvmaf_is_reported(clip, tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' TS psnr              VV->V      Calculate the PSNR'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(ENV_VAR, str(fake))
    ref = VideoInput(clip.ref, clip.width, clip.height)
    with pytest.raises(BackendUnavailableError, match="has no 'libvmaf' filter: VMAF needs an ffmpeg built with"):
        score("vmaf", ref, ref)
    monkeypatch.setenv(ENV_VAR, os.path.join(str(tmp_path), "absent"))
    with pytest.raises(BackendUnavailableError, match="not an executable file"):
        score("vmaf", ref, ref)
