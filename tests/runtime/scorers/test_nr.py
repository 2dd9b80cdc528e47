"""NR scoring through the Python API: one video, no reference, sampled frames, level probabilities."""

import numpy as np
import pytest
import torch

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput, open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.batch import run_batch
from vqa_rt.runtime.pipeline.score import score
from vqa_rt.runtime.scorers.nr_preprocess import NRPreprocessor

W, H, FRAMES, FPS = 64, 48, 25, 10
LEVELS = ["p_excellent", "p_good", "p_fair", "p_poor", "p_bad"]


def write_y4m(raw: str, path: str, width: int, height: int, fps: int) -> str:
    frame_bytes = width * height * 3 // 2
    with open(raw, "rb") as source, open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 C420jpeg\n".encode())
        while frame := source.read(frame_bytes):
            out.write(b"FRAME\n" + frame)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 25-frame 64x48 clip at 10 fps: raw YUV (no frame rate) and Y4M (F10:1)."""
    folder = tmp_path_factory.mktemp("nrvideo")
    raw = str(folder / "clip.yuv")
    make_test_clip(str(folder / "ref.yuv"), raw, W, H, FRAMES, seed=4, quality=10)
    return raw, write_y4m(raw, str(folder / "clip.y4m"), W, H, FPS)


@pytest.fixture(scope="module")
def result(nr_export, video):
    return score(nr_export.path, None, video[1])


def _scores(result, metric="score"):
    return np.array([frame["metrics"][metric] for frame in result["frames"]])


def test_one_frame_per_second_by_default(result):
    assert [f["frameNum"] for f in result["frames"]] == [0, 10, 20]
    assert result["input"]["reference"] is None and result["input"]["sample_fps"] == 1.0
    model = result["model"]
    assert model["kind"] == "nr" and model["metric"] == "score" and model["untrained"] is True
    assert [level["word"] for level in model["levels"]] == ["excellent", "good", "fair", "poor", "bad"]


def test_frames_carry_level_probabilities_and_the_video_score_is_that_of_their_mean(result):
    for frame in result["frames"]:
        assert list(frame["metrics"]) == ["score", *LEVELS]
        assert sum(frame["metrics"][name] for name in LEVELS) == pytest.approx(1.0, abs=1e-5)
    pooled = result["pooled_metrics"]
    mean_probs = np.array([pooled[name]["mean"] for name in LEVELS])
    assert pooled["score"]["mean"] == pytest.approx(1 + 4 * mean_probs @ [1, 0.75, 0.5, 0.25, 0], abs=1e-6)


def test_frame_scores_equal_pytorch_on_the_same_frames(result, nr_export, video):
    preprocess = NRPreprocessor({"size": [32, 32], "resize": "pad", "mean": nr_export.loaded.config.image_mean,
                                 "std": nr_export.loaded.config.image_std})
    with open_video(video[0], W, H) as reader:
        pixels = torch.from_numpy(np.stack([preprocess(f) for f in reader if f.index in (0, 10, 20)]))
    with torch.no_grad():
        scores, probs, _ = nr_export.loaded.model(pixels)
    np.testing.assert_allclose(_scores(result), scores.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.array([[f["metrics"][n] for n in LEVELS] for f in result["frames"]]),
                               probs.numpy(), rtol=1e-4, atol=1e-7)


def test_raw_yuv_needs_its_frame_rate_for_sampling_per_second(nr_export, video, result):
    with pytest.raises(InputError, match="needs the video's frame rate.*--fps"):
        score(nr_export.path, None, VideoInput(video[0], W, H))
    raw = score(nr_export.path, None, VideoInput(video[0], W, H, fps=FPS))
    assert _scores(raw).tolist() == _scores(result).tolist()


@pytest.mark.parametrize("options, frames", [
    (ScoreOptions(sample_frames=4), [3, 9, 15, 21]),
    (ScoreOptions(frame_stride=1, max_frames=5), [0, 1, 2, 3, 4]),
    (ScoreOptions(frame_skip=5, sample_fps=2.0), [5, 10, 15, 20]),
])
def test_other_samplings(nr_export, video, options, frames):
    assert [f["frameNum"] for f in score(nr_export.path, None, video[1], options)["frames"]] == frames


def test_batching_gives_the_same_scores(nr_export, video):
    options = ScoreOptions(frame_stride=3)
    single, batched = (score(nr_export.path, None, video[1], options), score(nr_export.path, None, video[1],
                                                                             ScoreOptions(frame_stride=3, batch_size=4)))
    np.testing.assert_allclose(_scores(batched), _scores(single), rtol=1e-5)


def test_reference_rules(nr_export, fr_export, video, clip):
    with pytest.raises(InputError, match="no-reference \\(nr\\) model and takes no reference video"):
        score(nr_export.path, video[1], video[1])
    with pytest.raises(InputError, match="give the reference"):
        score(fr_export.path, None, VideoInput(clip.dist, clip.width, clip.height))
    with pytest.raises(InputError, match="--analysis-size does not apply"):
        score(nr_export.path, None, video[1], ScoreOptions(analysis_size=(32, 32)))


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_preprocessing_matches_transformers_llava_image_processor(video, mode):
    processors = pytest.importorskip("transformers.models.llava.image_processing_pil_llava")
    from vqa_rt.export.models.nr import CLIP_MEAN, CLIP_STD
    from vqa_rt.runtime.frames.color import yuv_to_rgb

    frame = next(iter(open_video(video[0], W, H)))
    rgb8 = np.round(yuv_to_rgb(frame) * 255).astype(np.uint8).transpose(1, 2, 0)
    processor = processors.LlavaImageProcessorPil(
        do_pad=mode == "pad", size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    expected = processor(images=[rgb8], return_tensors="np")["pixel_values"][0]
    ours = NRPreprocessor({"size": [32, 32], "resize": mode, "mean": CLIP_MEAN, "std": CLIP_STD})(frame)
    # Same geometry and normalisation; PIL's bicubic and OpenCV's area resampling differ in detail.
    assert np.abs(ours - expected).mean() < 0.05
    assert np.corrcoef(ours.ravel(), expected.ravel())[0, 1] > 0.99


def test_score_batch_gives_nr_engines_no_reference(nr_export, video, write_csv, tmp_path):
    manifest = write_csv(tmp_path / "m.csv", [{"reference": video[1], "distorted": video[1], "mos": "3"}])
    summary = run_batch(manifest, [nr_export.path, "psnr"], str(tmp_path / "out.csv"))
    assert summary.scored == 1 and summary.failed == 0
