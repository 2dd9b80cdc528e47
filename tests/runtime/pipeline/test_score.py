"""FR scoring end to end through the Python API, checked against PyTorch and ffmpeg-converted inputs."""

import json

import numpy as np
import pytest
import torch

from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.options import ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput, open_video
from vqa_rt.runtime.pipeline.score import score


def _raw(clip, path, pix_fmt=None):
    return VideoInput(path, clip.width, clip.height, pix_fmt)


def _scores(result, metric="score"):
    return np.array([frame["metrics"][metric] for frame in result["frames"]])


@pytest.fixture(scope="module")
def baseline(fr_export, clip):
    return score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.dist))


def test_result_is_libvmaf_shaped_and_pooled_from_frames(baseline, clip):
    assert [f["frameNum"] for f in baseline["frames"]] == list(range(clip.frames))
    assert baseline["complete"] is True and baseline["error"] is None
    assert baseline["model"]["untrained"] is True and baseline["model"]["backend"] == "onnxruntime-cpu"
    for metric in ("score", "spatial", "temporal"):
        values = _scores(baseline, metric)
        pooled = baseline["pooled_metrics"][metric]
        assert pooled["mean"] == pytest.approx(values.mean())
        assert pooled["min"] == pytest.approx(values.min()) and pooled["max"] == pytest.approx(values.max())
        assert pooled["harmonic_mean"] == pytest.approx(len(values) / np.sum(1 / values))
        assert pooled["p5"] == pytest.approx(np.percentile(values, 5))
        assert np.all((values >= 1) & (values <= 7))


def test_frame_scores_equal_pytorch_on_the_same_frames(baseline, fr_export, clip):
    preprocess = fr_export.loaded.model  # the PyTorch reference model
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    def frames(path):
        with open_video(path, clip.width, clip.height) as reader:
            return [torch.from_numpy(normalize(yuv_to_rgb(f), mean, std))[None] for f in reader]

    ref, dist = frames(clip.ref), frames(clip.dist)
    expected = []
    with torch.no_grad():
        for i in range(clip.frames):
            prev = max(i - 1, 0)
            expected.append(preprocess(ref[i], dist[i], ref[prev], dist[prev])[0].item())
    np.testing.assert_allclose(_scores(baseline), expected, rtol=1e-4)


def test_scoring_is_deterministic(fr_export, clip):
    """Two runs over the same input give bit-identical scores."""
    same = score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.ref), ScoreOptions(max_frames=2))
    again = score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.ref), ScoreOptions(max_frames=2))
    assert np.array_equal(_scores(same), _scores(again))


def test_ten_bit_and_y4m_inputs_match_eight_bit_raw(baseline, fr_export, clip, run_ffmpeg, tmp_path):
    size = f"{clip.width}x{clip.height}"
    converted = {}
    for name, pix_fmt, suffix in (("y4m", "yuv420p", "y4m"), ("p10", "yuv420p10le", "yuv"), ("p10y4m", "yuv420p10le", "y4m")):
        for role, source in (("ref", clip.ref), ("dist", clip.dist)):
            target = str(tmp_path / f"{role}_{name}.{suffix}")
            extra = ["-strict", "-1"] if suffix == "y4m" and pix_fmt != "yuv420p" else []
            run_ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-i", source, "-pix_fmt", pix_fmt, *extra, target)
            converted[role, name] = target
    y4m = score(fr_export.path, converted["ref", "y4m"], converted["dist", "y4m"])
    np.testing.assert_array_equal(_scores(y4m), _scores(baseline))  # same bytes, same scores
    p10 = score(fr_export.path, _raw(clip, converted["ref", "p10"], "yuv420p10le"), _raw(clip, converted["dist", "p10"], "yuv420p10le"))
    p10y4m = score(fr_export.path, converted["ref", "p10y4m"], converted["dist", "p10y4m"])
    np.testing.assert_allclose(_scores(p10), _scores(baseline), atol=5e-3)  # ffmpeg's 8->10-bit scaling
    np.testing.assert_array_equal(_scores(p10y4m), _scores(p10))


def test_skip_stride_and_max_frames_keep_the_true_previous_frame(baseline, fr_export, clip):
    result = score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.dist), ScoreOptions(frame_skip=1, frame_stride=2, max_frames=2))
    assert [f["frameNum"] for f in result["frames"]] == [1, 3]
    np.testing.assert_allclose(_scores(result), _scores(baseline)[[1, 3]], rtol=1e-5)


def test_batching_gives_the_same_scores(baseline, fr_export, clip):
    batched = score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.dist), ScoreOptions(batch_size=4))
    np.testing.assert_allclose(_scores(batched), _scores(baseline), rtol=1e-5)


def test_analysis_size_resizes_before_inference(fr_export, clip):
    result = score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.dist), ScoreOptions(analysis_size=(64, 64), max_frames=2))
    assert len(result["frames"]) == 2 and result["input"]["analysis_size"] == (64, 64)
    with pytest.raises(InputError, match="below the model's minimum of 64"):
        score(fr_export.path, _raw(clip, clip.ref), _raw(clip, clip.dist), ScoreOptions(analysis_size=(32, 48)))


def test_truncated_stream_keeps_scored_frames_in_a_valid_partial_file(fr_export, clip, tmp_path):
    frame_bytes = clip.width * clip.height * 3 // 2
    header = f"YUV4MPEG2 W{clip.width} H{clip.height} F25:1 C420jpeg\n".encode()
    with open(clip.ref, "rb") as handle:
        frames = [handle.read(frame_bytes) for _ in range(3)]
    truncated = tmp_path / "ref.y4m"
    truncated.write_bytes(header + b"".join(b"FRAME\n" + f for f in frames[:2]) + b"FRAME\n" + frames[2][:100])
    dist = tmp_path / "dist.y4m"
    dist.write_bytes(header + b"".join(b"FRAME\n" + f for f in frames))
    output = tmp_path / "out.json"
    # Regular files are checked when opened, so read the truncated one as a stream.
    with open(truncated, "rb") as stream:
        import sys
        from unittest import mock

        with mock.patch.object(sys, "stdin", mock.Mock(buffer=stream)):
            with pytest.raises(InputError, match="frame 2 is truncated"):
                score(fr_export.path, "-", str(dist), output_json=str(output))
    partial = json.loads(output.read_text())
    assert partial["complete"] is False and "frame 2 is truncated" in partial["error"]
    assert [f["frameNum"] for f in partial["frames"]] == [0, 1]


def test_wrong_model_kind_is_refused_before_reading_video(tmp_path, clip):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    model.metadata_props.add(key="vqa_rt.kind", value='"qpmap"')
    path = str(tmp_path / "qp.onnx")
    onnx.save(model, path)
    with pytest.raises(ModelError, match="is a 'qpmap' model, not a 'fr' model"):
        score(path, _raw(clip, clip.ref), _raw(clip, clip.dist))
