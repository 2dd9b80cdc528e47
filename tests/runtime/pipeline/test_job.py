"""One job (FR + NR + QP maps) in one pass equals the three engines run one by one."""

from __future__ import annotations

import io
import json
import os
import sys
import types

import numpy as np
import pytest

from vqa_rt.errors import InputError, VqaRtError
from vqa_rt.runtime.frames.options import EngineSampling, ScoreOptions
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.job import JobEngines, JobOptions, run_job
from vqa_rt.runtime.pipeline.qpmap import qp_maps
from vqa_rt.runtime.pipeline.score import score

FPS = 2  # NR's default 1 frame per second takes frames 0, 2, 4 of the 6-frame clip


@pytest.fixture
def inputs(clip):
    return {"reference": VideoInput(clip.ref, clip.width, clip.height, fps=FPS),
            "distorted": VideoInput(clip.dist, clip.width, clip.height, fps=FPS)}


def test_one_pass_equals_three_separate_runs(tmp_path, clip, inputs, fr_export, nr_export, qpmap_export):
    lines = []
    summary = run_job(JobEngines(fr=fr_export.path, nr=nr_export.path, qpmap=qpmap_export.path), inputs,
                      output_dir=str(tmp_path / "out"), on_frame=lines.append)

    fr = score(fr_export.path, inputs["reference"], inputs["distorted"])
    nr = score(nr_export.path, None, inputs["distorted"])
    maps = qp_maps(inputs["reference"], qpmap_export.path)
    assert summary["results"]["fr"]["frames"] == fr["frames"] and len(fr["frames"]) == clip.frames
    assert summary["results"]["nr"]["frames"] == nr["frames"]
    assert [f["frameNum"] for f in nr["frames"]] == [0, 2, 4]
    assert summary["results"]["qpmap"]["frames"] == maps.summary["frames"]

    out = tmp_path / "out"
    assert json.loads((out / "fr.json").read_text())["frames"] == fr["frames"]
    assert json.loads((out / "nr.json").read_text())["pooled_metrics"] == nr["pooled_metrics"]
    np.testing.assert_array_equal(np.load(out / "qpmap.npy"), maps.delta)
    assert json.loads((out / "qpmap.json").read_text())["pooled"] == maps.summary["pooled"]
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and {n: e["frames"] for n, e in run["engines"].items()} == {"fr": 6, "nr": 3, "qpmap": 6}
    assert (out / "fr.csv").read_text().count("\n") == clip.frames + 1

    # merged per-frame results: in order, each with the engines that took that frame
    assert [line["frameNum"] for line in lines] == list(range(clip.frames))
    assert [sorted(k for k in line if k != "frameNum") for line in lines[:2]] == [["fr", "nr", "qpmap"],
                                                                                  ["fr", "qpmap"]]
    assert lines[2]["nr"] == nr["frames"][1]["metrics"] and lines[3]["fr"] == fr["frames"][3]["metrics"]
    assert lines[5]["qpmap"]["mean_delta_qp"] == maps.summary["frames"][5]["mean_delta_qp"]


def test_engine_sampling_and_frame_cap(clip, inputs, fr_export):
    options = JobOptions(frames=ScoreOptions(frame_skip=1, max_frames=4), fr=EngineSampling(frame_stride=2))
    result = run_job(JobEngines(fr=fr_export.path, qp_method="activity"), inputs, options)
    assert [f["frameNum"] for f in result["results"]["fr"]["frames"]] == [1, 3]
    assert [f["frameNum"] for f in result["results"]["qpmap"]["frames"]] == [1, 2, 3, 4]
    stride = score(fr_export.path, inputs["reference"], inputs["distorted"], ScoreOptions(frame_skip=1, frame_stride=2))
    assert result["results"]["fr"]["frames"] == stride["frames"][:2]


def test_sampling_is_per_engine_not_for_the_whole_job():
    with pytest.raises(InputError, match="a job's frame sampling is per engine"):
        JobOptions(frames=ScoreOptions(frame_stride=2))
    with pytest.raises(InputError, match="frame stride must be 1 or more"):
        JobOptions(fr=EngineSampling(frame_stride=0))


def test_bad_jobs_fail_before_writing(tmp_path, clip, inputs, fr_export, nr_export):
    out = tmp_path / "out"
    cases = [
        (JobEngines(), inputs, "nothing to run"),
        (JobEngines(fr=nr_export.path), inputs, "not an FR model"),
        (JobEngines(nr=fr_export.path), inputs, "not a 'nr' model"),
        (JobEngines(qp_method="activity"), {"distorted": inputs["distorted"]}, "need the source video"),
        (JobEngines(fr=fr_export.path), {"reference": inputs["reference"]}, "need the distorted video"),
    ]
    for engines, given, message in cases:
        with pytest.raises(VqaRtError, match=message):
            run_job(engines, given, output_dir=str(out))
    assert not out.exists()


def test_a_bad_frame_keeps_what_was_scored(tmp_path, monkeypatch, clip, inputs, fr_export):
    data = open(clip.dist, "rb").read()
    partial = data[: len(data) * 4 // 6 + 100]  # 4 whole frames, then part of one, on a stream
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BufferedReader(io.BytesIO(partial))))
    broken = {**inputs, "distorted": VideoInput("-", clip.width, clip.height)}
    with pytest.raises(InputError, match="frame 4"):
        run_job(JobEngines(fr=fr_export.path, qp_method="activity"), broken, output_dir=str(tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "fr.json").read_text())
    assert saved["complete"] is False and "frame 4" in saved["error"]
    assert [f["frameNum"] for f in saved["frames"]] == [0, 1, 2, 3]  # every frame read before the bad one
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["complete"] is False and run["engines"]["fr"]["frames"] == 4
    assert not os.path.exists(tmp_path / "out" / "qpmap.npy")  # maps appear only when complete
