"""QP maps end to end through the Python API: against PyTorch, across formats, summaries, bad inputs."""

import json
import math
import os

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import vqa_rt
from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.frames.color import yuv_to_rgb
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sources import VideoInput, open_video
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.qpmap import qp_maps, write_qp_maps
from vqa_rt.runtime.qpmaps.conversion import QPConversion

WIDTH, HEIGHT, FRAMES = 120, 72, 4  # neither side a multiple of 16


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> VideoInput:
    folder = tmp_path_factory.mktemp("qpclip")
    path = str(folder / "clip.yuv")
    make_test_clip(path, str(folder / "unused.yuv"), WIDTH, HEIGHT, FRAMES, seed=7, distortion="none")
    return VideoInput(path, WIDTH, HEIGHT, "yuv420p")


@pytest.fixture(scope="module")
def model_maps(qpmap_export, video):
    return qp_maps(video, qpmap_export.path)


def test_maps_cover_the_frame_exactly(model_maps):
    assert model_maps.delta.shape == (FRAMES, math.ceil(HEIGHT / 16), math.ceil(WIDTH / 16))
    assert model_maps.delta.dtype == np.int8 and np.abs(model_maps.delta).max() <= 4
    np.testing.assert_array_equal(model_maps.qp, 32 + model_maps.delta.astype(int))


def test_model_maps_equal_the_pytorch_reference(model_maps, qpmap_export, video):
    conversion = QPConversion()
    with open_video(video.path, WIDTH, HEIGHT) as reader:
        rgb = [torch.from_numpy(yuv_to_rgb(frame))[None] for frame in reader]
    with torch.no_grad():
        expected = [conversion(qpmap_export.loaded.model(x)[0, 0].double().numpy()) for x in rgb]
    np.testing.assert_array_equal(model_maps.delta, np.stack(expected))
    assert len({m.tobytes() for m in model_maps.delta}) > 1, "maps should follow the moving content"


def test_summary_matches_the_maps_and_says_untrained(model_maps):
    summary = model_maps.summary
    assert summary["complete"] and summary["model"]["untrained"] is True and summary["model"]["method"] == "model"
    assert summary["map"] == {"rows": 5, "cols": 8, "grid": 16}
    assert summary["conversion"]["qp_range"] == [0, 51] and summary["conversion"]["beta"] == -1.367
    for frame, delta in zip(summary["frames"], model_maps.delta):
        assert frame["mean_delta_qp"] == pytest.approx(delta.mean())
        assert (frame["min_delta_qp"], frame["max_delta_qp"]) == (delta.min(), delta.max())
        assert frame["mean_qp"] == pytest.approx(32 + delta.mean())
    values, counts = np.unique(model_maps.delta, return_counts=True)
    assert {k: v for k, v in summary["histogram"].items() if v} == {str(v): c for v, c in zip(values, counts)}
    assert list(summary["histogram"]) == [str(d) for d in range(-4, 5)]


def test_every_format_holds_the_same_maps(video, tmp_path):
    fine = qp_maps(video, method="activity").delta
    coarse = qp_maps(video, method="activity", conversion=QPConversion(grid=64)).delta
    assert coarse.shape == (FRAMES, 2, 2)
    for fmt, name in (("npy", "m.npy"), ("x265", "m.x265"), ("kvazaar-bin", "m.bin"), ("csv", "m.csv")):
        write_qp_maps(video, str(tmp_path / name), fmt, method="activity")
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), fine)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "m.x265", "<f4").reshape(fine.shape), fine)
    binary = np.fromfile(tmp_path / "m.bin", np.int8).reshape(FRAMES, -1)
    assert np.all(binary[:, :8].copy().view("<i4") == [2, 2])  # cols, rows of 64x64 cells
    np.testing.assert_array_equal(binary[:, 8:].reshape(coarse.shape), coarse)
    rows = np.loadtxt(tmp_path / "m.csv", delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(rows[:, 3].reshape(fine.shape), fine)


def test_json_format_and_summary_file(video, tmp_path):
    result = write_qp_maps(video, str(tmp_path / "roi.txt"), "kvazaar", method="activity",
                           summary_path=str(tmp_path / "summary.json"))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == result
    assert saved["model"] == {"method": "activity", "untrained": False, "description": saved["model"]["description"]}
    assert saved["map"] == {"rows": 2, "cols": 2, "grid": 64, "format": "kvazaar", "output": str(tmp_path / "roi.txt")}
    only = write_qp_maps(video, str(tmp_path / "only.json"), "json", method="activity")
    assert json.loads((tmp_path / "only.json").read_text())["frames"] == only["frames"]
    assert len(only["frames"]) == FRAMES


def test_y4m_and_max_frames(video, tmp_path):
    frame_bytes = WIDTH * HEIGHT * 3 // 2
    with open(video.path, "rb") as handle:
        raw = handle.read()
    y4m = tmp_path / "clip.y4m"
    y4m.write_bytes(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F25:1 C420jpeg\n".encode()
                    + b"".join(b"FRAME\n" + raw[i:i + frame_bytes] for i in range(0, len(raw), frame_bytes)))
    seen = []
    maps = vqa_rt.qp_maps(str(y4m), method="activity", frame_options=FrameOptions(max_frames=2),
                   progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(maps.delta, qp_maps(video, method="activity").delta[:2])
    assert seen == [(1, 2), (2, 2)]


def _onnx_of_kind(path, kind):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for key, value in {"kind": kind, "inputs": ["x"], "outputs": ["y"], "preprocess": {}, "score_scale": {}}.items():
        model.metadata_props.add(key=f"vqa_rt.{key}", value=json.dumps(value))
    onnx.save(model, str(path))
    return str(path)


def test_bad_requests_fail_before_anything_is_written(video, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fr = _onnx_of_kind(tmp_path / "fr.onnx", "fr")
    cases = [
        (ModelError, "is a 'fr' model, not a 'qpmap' model", dict(engine=fr)),
        (InputError, "the activity method takes no engine", dict(engine=fr, method="activity")),
        (InputError, "unknown QP-map method 'magic'", dict(method="magic")),
    ]
    for error, message, kwargs in cases:
        with pytest.raises(error, match=message):
            write_qp_maps(video, str(out / "m.npy"), "npy", **kwargs)
    for field, value, message in (("max_frames", 0, "max frames must be 1 or more"),
                                  ("matrix", "bt2020", "unknown colour matrix 'bt2020'"),
                                  ("color_range", "tv", "unknown colour range 'tv'")):
        with pytest.raises(InputError, match=message):
            FrameOptions(**{field: value})
    with pytest.raises(InputError, match="output directory .* does not exist"):
        write_qp_maps(video, str(tmp_path / "missing" / "m.npy"), "npy", method="activity")
    assert os.listdir(out) == []


@pytest.mark.parametrize("options, message", [
    (FrameOptions(analysis_size=(64, 64)), "made at the video's own size"),
    (FrameOptions(frame_stride=2), "made for every frame"),
    (FrameOptions(sample_fps=1.0), "made for every frame"),
])
def test_options_that_would_skip_or_resize_frames_are_refused(video, tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        write_qp_maps(video, str(tmp_path / "m.npy"), "npy", method="activity", frame_options=options)
    assert not (tmp_path / "m.npy").exists()


def test_a_truncated_video_writes_nothing(video, tmp_path):
    frame_bytes = WIDTH * HEIGHT * 3 // 2
    truncated = tmp_path / "cut.y4m"
    with open(video.path, "rb") as handle:
        first, second = handle.read(frame_bytes), handle.read(frame_bytes // 2)
    truncated.write_bytes(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F25:1\n".encode() + b"FRAME\n" + first + b"FRAME\n" + second)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="frame 1 is truncated"):
        write_qp_maps(str(truncated), str(out / "m.npy"), "npy", method="activity", summary_path=str(out / "s.json"))
    assert os.listdir(out) == []
