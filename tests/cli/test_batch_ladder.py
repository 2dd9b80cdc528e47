"""score-batch scores rows that share a reference together (the reference read once, an FR model's reference
share computed once): each row's line is what scoring it alone gives, and a bad row's error stays its own."""

from __future__ import annotations

import csv

import pytest

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.manifest import read_manifest
from vqa_rt.runtime.pipeline.rows import LADDER_ROWS, ladder_groups
from vqa_rt.runtime.pipeline.score import score

W, H, FRAMES = 128, 96, 4


@pytest.fixture(scope="module")
def shared_references(tmp_path_factory):
    """Two references with five and two JPEG renditions, one row alone, and a short (bad) rendition in the
    first group."""
    folder = tmp_path_factory.mktemp("batch_ladder")
    rows = []
    for name, seed, qualities in (("a", 1, (10, 20, 30, 50, 80)), ("b", 2, (15, 60)), ("c", 3, (40,))):
        for quality in qualities:
            distorted = f"{name}_q{quality}.yuv"
            make_test_clip(str(folder / f"{name}.yuv"), str(folder / distorted), W, H, FRAMES, seed=seed,
                           quality=quality)
            rows.append((f"{name}.yuv", distorted))
    whole = (folder / "a_q10.yuv").read_bytes()
    (folder / "a_short.yuv").write_bytes(whole[: len(whole) // FRAMES])  # 1 of 4 frames
    rows.insert(2, ("a.yuv", "a_short.yuv"))
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "width", "height"])
        writer.writerows((reference, distorted, W, H) for reference, distorted in rows)
    return folder


def test_rows_sharing_a_reference_are_grouped(shared_references):
    rows = read_manifest(str(shared_references / "manifest.csv")).rows
    groups = ladder_groups(rows, workers=1)
    assert [[row.key for row in group] for group in groups] == [
        ["a_q10.yuv", "a_q20.yuv", "a_short.yuv", "a_q30.yuv"], ["a_q50.yuv", "a_q80.yuv"],
        ["b_q15.yuv", "b_q60.yuv"], ["c_q40.yuv"]]
    assert max(len(group) for group in groups) == LADDER_ROWS
    assert [len(group) for group in ladder_groups(rows, workers=2)] == [3, 3, 2, 1]  # two groups per worker
    assert [len(group) for group in ladder_groups(rows, workers=4)] == [2, 2, 2, 2, 1]


def test_grouped_rows_score_as_each_row_alone(shared_references, cli, fr_export):
    output = shared_references / "scores.csv"
    done = cli("score-batch", shared_references / "manifest.csv", "-e", fr_export.path, "-e", "psnr", "-o", output,
               "--workers", "1")
    assert done.returncode == 1, done.stderr  # the short rendition
    with open(output, newline="") as handle:
        lines = {line["distorted"]: line for line in csv.DictReader(handle)}
    bad = lines.pop("a_short.yuv")
    assert bad["status"] == "failed" and "reference has 4 frames, distorted has 1" in bad["error"]
    column = fr_export.path.rsplit("/", 1)[-1][:-5]
    for distorted, line in lines.items():
        assert line["status"] == "ok" and line["frames"] == str(FRAMES)
        reference = VideoInput(str(shared_references / line["reference"]), W, H)
        video = VideoInput(str(shared_references / distorted), W, H)
        fr = score(fr_export.path, reference, video)["pooled_metrics"]["score"]["mean"]
        psnr = score("psnr", reference, video)["pooled_metrics"]["psnr_y"]["mean"]
        assert float(line[column]) == pytest.approx(fr, abs=1e-5)
        assert line["psnr"] == format(psnr, ".10g")
