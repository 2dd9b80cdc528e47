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
LOGITS = [name.replace("p_", "logit_") for name in LEVELS]


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
        assert list(frame["metrics"]) == ["score", *LEVELS, *LOGITS]
        assert sum(frame["metrics"][name] for name in LEVELS) == pytest.approx(1.0, abs=1e-5)
    pooled = result["pooled_metrics"]
    mean_probs = np.array([pooled[name]["mean"] for name in LEVELS])
    assert pooled["score"]["mean"] == pytest.approx(1 + 4 * mean_probs @ [1, 0.75, 0.5, 0.25, 0], abs=1e-6)
    assert result["video"]["protocol"] == "mean-score" and result["video"]["score"] == pooled["score"]["mean"]


def test_qalign_per_frame_protocol_averages_logits_before_the_softmax(nr_export, video, result):
    from scipy.special import softmax

    averaged = score(nr_export.path, None, video[1], ScoreOptions(nr_protocol="mean-logits"))
    assert [f["metrics"] for f in averaged["frames"]] == [f["metrics"] for f in result["frames"]]
    logits = np.array([[frame["metrics"][name] for name in LOGITS] for frame in result["frames"]])
    probs = softmax(logits.mean(axis=0))
    assert averaged["video"]["score"] == pytest.approx(1 + 4 * probs @ [1, 0.75, 0.5, 0.25, 0], rel=1e-9)
    assert list(averaged["video"]["level_probs"].values()) == pytest.approx(probs, rel=1e-9)
    # not the same as the mean score, unless the frames agree (they do not here)
    assert abs(averaged["video"]["score"] - result["video"]["score"]) > 1e-6


def test_frame_logits_are_the_models(result):
    for frame in result["frames"]:
        logits = np.array([frame["metrics"][name] for name in LOGITS])
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(probs, [frame["metrics"][name] for name in LEVELS], rtol=1e-5)


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


@pytest.fixture(scope="module")
def clip_export(tmp_path_factory):
    """A tiny mPLUG-Owl2 clip graph (2 frames per prompt, Q-Align's joint video prompt), exported and validated."""
    import dataclasses

    from vqa_rt.export.models.checkpoint import random_init
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.export.to_onnx.onnx_export import export_onnx

    spec = get_spec("nr")
    loaded = random_init(spec, 0, dataclasses.replace(spec.config_from_preset("tiny-mplug-owl2"), frames=2))
    path = str(tmp_path_factory.mktemp("clip") / "clip.onnx")
    export_onnx(spec, loaded, path)
    return path, loaded


def test_a_clip_engine_scores_its_frames_in_one_prompt(clip_export, video):
    path, loaded = clip_export
    result = score(path, None, video[1], ScoreOptions(sample_frames=4))
    assert [f["metrics"]["clip"] for f in result["frames"]] == [0, 0, 1, 1]
    assert result["model"]["frames_per_prompt"] == 2
    preprocess = NRPreprocessor({"size": [28, 28], "resize": "pad", "mean": loaded.config.image_mean,
                                 "std": loaded.config.image_std})
    indices = [f["frameNum"] for f in result["frames"]]
    with open_video(video[0], W, H) as reader:
        pixels = torch.from_numpy(np.stack([preprocess(f) for f in reader if f.index in indices])).unflatten(0, (2, 2))
    with torch.no_grad():
        scores, _, _ = loaded.model(pixels)
    np.testing.assert_allclose(_scores(result), np.repeat(scores.numpy(), 2), rtol=1e-5)
    assert result["video"]["score"] == pytest.approx(float(scores.mean()), rel=1e-5)


def test_a_clip_engine_takes_its_frame_count_by_default_and_refuses_leftovers(clip_export, video):
    assert len(score(clip_export[0], None, video[1])["frames"]) == 2
    with pytest.raises(InputError, match="scores clips of 2 frames and 1 selected frames are left over"):
        score(clip_export[0], None, video[1], ScoreOptions(sample_frames=3))


def test_an_unknown_protocol_is_refused():
    with pytest.raises(InputError, match="unknown NR protocol 'median' \\(known: mean-score, mean-logits\\)"):
        ScoreOptions(nr_protocol="median")
