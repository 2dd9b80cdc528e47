"""FR training: the VMAF-labelled clips made here (real encoders, VMAF per frame), a tiny seeded distillation that
resumes exactly, and fine-tuning on a score-batch manifest with MOS through the command line."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

from vqa_rt.export.models.fr import FRConfig  # noqa: E402
from vqa_rt.export.training import fr_data  # noqa: E402
from vqa_rt.export.training.fr_train import (  # noqa: E402
    Batches,
    FRTrainOptions,
    distillation_data,
    labelled_clips,
    seeded_model,
    train,
    vmaf_to_dcr,
)

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
    clips = labelled_clips(str(data / "validation"))
    rows = [json.loads(line) for line in (data / "validation" / "labels.jsonl").read_text().splitlines()]
    inputs, targets = Batches(clips).inputs([(0, 0), (1, 2)])
    assert [tuple(x.shape) for x in inputs] == [(2, 3, 64, 96)] * 4
    assert torch.equal(inputs[0][0], inputs[2][0])  # the first frame is its own predecessor
    assert targets[0] == pytest.approx(float(vmaf_to_dcr(rows[0]["vmaf"][0])))


def test_a_resumed_fr_run_equals_an_uninterrupted_one(data, tmp_path):
    options = FRTrainOptions(steps=3, batch=2, validate_every=3, checkpoint_every=1)
    training, validation = distillation_data(str(data))
    straight = seeded_model(TINY, 0)
    record = train(options, training, validation, str(tmp_path / "a"), straight, log=lambda line: None)
    train(options, training, validation, str(tmp_path / "b"), seeded_model(TINY, 0), log=lambda line: None,
          stop_at=1)
    resumed = seeded_model(TINY, 0)
    again = train(options, training, validation, str(tmp_path / "b"), resumed, log=lambda line: None)
    assert again["history"] == record["history"] and set(record["history"][-1]) >= {"srocc", "plcc", "rmse"}
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_fine_tuning_on_a_manifest_with_mos_through_the_command_line(data, tmp_path, cli):
    from vqa_rt.export.models.checkpoint import LoadedModel, save_checkpoint

    start = tmp_path / "start.pt"
    save_checkpoint(LoadedModel(seeded_model(TINY, 3), TINY, False, "test"), str(start), "fr")
    folder = data / "validation"
    rows = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()]
    manifest = tmp_path / "mos.csv"
    manifest.write_text("reference,distorted,width,height,mos\n" + "".join(
        f"{folder / r['reference_path']},{folder / r['distorted_path']},96,64,{1 + 5 * i / len(rows):.2f}\n"
        for i, r in enumerate(rows)))
    output = tmp_path / "tuned.safetensors"
    result = cli("train", "fr", "--manifest", manifest, "--from", start, "--output", output, "--steps", 2,
                 "--batch", 2, "--analysis-size", "96x64", "--samples-per-clip", 2, "--workdir", tmp_path / "w")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith(f"wrote {output} (step 2")
    onnx = tmp_path / "tuned.onnx"
    assert cli("export", "fr", "--checkpoint", output, "-o", onnx).returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(manifest.read_text().replace(",1.00\n", ",9\n"))
    result = cli("train", "fr", "--manifest", bad, "--from", start, "--output", tmp_path / "x.safetensors",
                 "--workdir", tmp_path / "w2")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "mos '9' is not a DCR score (1..7)" in stderr and len(stderr.splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()
