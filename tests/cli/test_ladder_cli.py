"""Ladder scoring as users run it: ``vqa-rt score -r REF -d D1 -d D2 -d D3 --output-dir DIR`` against scoring each
pair alone, for the FR model and every baseline; bad ladders."""

from __future__ import annotations

import json

import pytest

from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.score import score

W, H, FRAMES = 192, 176, 5  # MS-SSIM needs 176 pixels a side
QUALITIES = (10, 30, 70)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory) -> tuple[str, list[str]]:
    """A reference and three JPEG renditions of it at rising quality (one scene: the same seed)."""
    folder = tmp_path_factory.mktemp("ladder")
    renditions = []
    for quality in QUALITIES:
        renditions.append(str(folder / f"q{quality}.yuv"))
        make_test_clip(str(folder / "ref.yuv"), renditions[-1], W, H, FRAMES, seed=4, quality=quality)
    return str(folder / "ref.yuv"), renditions


def _ladder_args(engine: str, reference: str, renditions: list[str]) -> list[str]:
    return ["score", "--engine", engine, "-r", reference, *(a for path in renditions for a in ("-d", path)),
            "-w", W, "-h", H]


@pytest.mark.parametrize("engine", ["fr", "psnr", "ssim", "ms-ssim", "vmaf"])
def test_each_rendition_is_scored_as_its_pair_alone(engine, ladder, cli, fr_export, tmp_path):
    name = fr_export.path if engine == "fr" else engine
    reference, renditions = ladder
    done = cli(*_ladder_args(name, reference, renditions), "--output-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"q{q}.{ext}" for q in QUALITIES for ext in ("json", "csv"))
    printed = done.stdout.decode().splitlines()
    assert [line.split(":")[0] for line in printed] == renditions
    for path, quality in zip(renditions, QUALITIES):
        together = json.loads((tmp_path / "out" / f"q{quality}.json").read_text())
        alone = score(name, VideoInput(reference, W, H), VideoInput(path, W, H))
        assert together["complete"] and together["input"] == alone["input"]
        assert together["model"] == alone["model"]
        assert [f["frameNum"] for f in together["frames"]] == list(range(FRAMES))
        for joint, single in zip(together["frames"], alone["frames"]):
            assert joint["metrics"].keys() == single["metrics"].keys()
            for key, value in single["metrics"].items():
                assert joint["metrics"][key] == pytest.approx(value, abs=1e-5 if engine == "fr" else 0)
        assert (tmp_path / "out" / f"q{quality}.csv").read_text().count("\n") == FRAMES + 1


@pytest.mark.parametrize("engine", ["fr", "ssim"])
def test_sampled_frames_are_scored_as_their_pairs_alone(engine, ladder, cli, fr_export, tmp_path):
    """With a stride the frame before a scored frame is not the one scored before it (the FR ladder converts it
    afresh rather than reusing the last batch)."""
    name = fr_export.path if engine == "fr" else engine
    reference, renditions = ladder
    done = cli(*_ladder_args(name, reference, renditions), "--frame-skip", 1, "--frame-stride", 2,
               "--output-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr.decode()
    options = FrameOptions(frame_skip=1, frame_stride=2)
    for path, quality in zip(renditions, QUALITIES):
        together = json.loads((tmp_path / "out" / f"q{quality}.json").read_text())["frames"]
        alone = score(name, VideoInput(reference, W, H), VideoInput(path, W, H), options)["frames"]
        assert [f["frameNum"] for f in together] == [f["frameNum"] for f in alone] == [1, 3]
        for joint, single in zip(together, alone):
            for key, value in single["metrics"].items():
                assert joint["metrics"][key] == pytest.approx(value, abs=1e-5 if engine == "fr" else 0)


def test_fr_scores_rise_with_rendition_quality(ladder, cli, shipped_fr, tmp_path):
    """The shipped (trained) FR model ranks the renditions as their JPEG quality does."""
    reference, renditions = ladder
    done = cli(*_ladder_args(shipped_fr, reference, renditions), "--output-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr.decode()
    means = [json.loads((tmp_path / "out" / f"q{q}.json").read_text())["pooled_metrics"]["score"]["mean"]
             for q in QUALITIES]
    assert means == sorted(means) and means[0] < means[-1]


def test_bad_ladders_are_one_line_and_write_nothing(ladder, cli, fr_export, nr_export, tmp_path):
    reference, renditions = ladder
    out = tmp_path / "out"
    other = tmp_path / "elsewhere"
    other.mkdir()
    same_name = other / "q10.yuv"
    same_name.write_bytes(open(renditions[0], "rb").read())
    short = tmp_path / "short.yuv"
    short.write_bytes(open(renditions[0], "rb").read()[: W * H * 3 // 2 * 2])  # 2 of 5 frames
    cases = {
        "are written to --output-dir": _ladder_args("psnr", reference, renditions),
        "not to --output/--csv": [*_ladder_args("psnr", reference, renditions), "--output-dir", out,
                                  "-o", tmp_path / "x.json"],
        "give --reference": ["score", "--engine", "psnr", "-d", renditions[0], "-d", renditions[1], "-w", W, "-h", H,
                             "--output-dir", out],
        "is a no-reference (nr) model": [*_ladder_args(nr_export.path, reference, renditions), "--output-dir", out],
        "would both write q10.json": [*_ladder_args("psnr", reference, [renditions[0], str(same_name)]),
                                      "--output-dir", out],
        "reference has 5 frames, distorted has 2": [*_ladder_args(fr_export.path, reference, [renditions[0], str(short)]),
                                                    "--output-dir", out],
    }
    for message, args in cases.items():
        done = cli(*args)
        assert done.returncode == 2, (message, done.stderr.decode())
        assert message in done.stderr.decode() and done.stderr.decode().count("\n") == 1, done.stderr.decode()
        assert not out.exists() and not (tmp_path / "x.json").exists()
