"""FR distillation: the labelled clips made here (real encoders, VMAF per frame), and a tiny seeded training run
that resumes exactly."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from vqa_rt.export.models.fr import FRConfig  # noqa: E402
from vqa_rt.export.training import fr_data  # noqa: E402
from vqa_rt.export.training.fr_train import FRTrainOptions, LabelledClips, train, vmaf_to_dcr  # noqa: E402

SPEC = fr_data.ClipSpec(width=96, height=64, frames=3)
DISTORTIONS = ("x265 crf15", "x265 crf45", "blur 2.5")
TINY = FRConfig(trunk_widths=(8, 8, 16, 16), trunk_blocks=(1, 1, 1, 1), fusion_channels=8, offset_groups=2,
                temporal_channels=(8, 8), head_hidden=8)


@pytest.fixture(scope="module")
def data(tmp_path_factory, ffmpeg):
    from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

    folder = tmp_path_factory.mktemp("frdata")
    for split, synthetic in (("train", 1), ("validation", 0)):
        fr_data.build(str(folder / split), find_vmaf_ffmpeg(), split, synthetic=synthetic, spec=SPEC,
                      distortions=DISTORTIONS, log=lambda line: None)
    return folder


def test_labels_are_per_frame_vmaf_that_falls_with_the_damage(data):
    rows = [json.loads(line) for line in (data / "validation" / "labels.jsonl").read_text().splitlines()]
    assert {r["distortion"] for r in rows} == set(DISTORTIONS) and len(rows) == 2 * len(DISTORTIONS)
    for row in rows:
        assert len(row["vmaf"]) == SPEC.frames and all(0 <= v <= 100 for v in row["vmaf"])
        assert row["vmaf_model"] == "vmaf_v0.6.1"
    by = {(r["reference"], r["distortion"]): np.mean(r["vmaf"]) for r in rows}
    for reference in {r["reference"] for r in rows}:
        assert by[reference, "x265 crf15"] > by[reference, "x265 crf45"] + 10


def test_a_rerun_adds_nothing_and_labels_map_to_dcr(data):
    from vqa_rt.runtime.scorers.baselines.vmaf import find_vmaf_ffmpeg

    labels = data / "validation" / "labels.jsonl"
    before = labels.read_text()
    fr_data.build(str(data / "validation"), find_vmaf_ffmpeg(), "validation", spec=SPEC, distortions=DISTORTIONS,
                  log=lambda line: None)
    assert labels.read_text() == before
    assert vmaf_to_dcr([100.0, 0.0, 50.0, 120.0]).tolist() == [5.0, 1.0, 3.0, 5.0]


def test_inputs_are_the_runtime_normalised_frames(data):
    clips = LabelledClips(str(data / "validation"))
    inputs, targets = clips.inputs([(0, 0), (1, 2)])
    assert [tuple(x.shape) for x in inputs] == [(2, 3, 64, 96)] * 4
    assert torch.equal(inputs[0][0], inputs[2][0])  # the first frame is its own predecessor
    assert targets[0] == pytest.approx(float(vmaf_to_dcr(clips.rows[0]["vmaf"][0])))


def test_a_resumed_fr_run_equals_an_uninterrupted_one(data, tmp_path):
    options = FRTrainOptions(steps=3, batch=2, validate_every=3, checkpoint_every=1)
    straight, record = train(options, str(data), str(tmp_path / "a"), TINY, log=lambda line: None)
    train(options, str(data), str(tmp_path / "b"), TINY, log=lambda line: None, stop_at=1)
    resumed, again = train(options, str(data), str(tmp_path / "b"), TINY, log=lambda line: None)
    assert again["history"] == record["history"] and set(record["history"][-1]) >= {"srocc", "plcc", "rmse"}
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
