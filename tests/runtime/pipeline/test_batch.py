"""Batch scoring: manifests, per-row results, failures, resuming and interruption."""

import csv
import shutil

import pytest

from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.batch import RESULT_COLUMNS, run_batch
from vqa_rt.runtime.pipeline.manifest import read_manifest
from vqa_rt.runtime.pipeline.score import score


@pytest.fixture()
def dataset(clip, tmp_path, write_csv):
    """Five distorted copies of the session clip under clips/, and a manifest with relative paths."""
    (tmp_path / "clips").mkdir()
    shutil.copy(clip.ref, tmp_path / "clips" / "ref.yuv")
    rows = []
    for i in range(5):
        shutil.copy(clip.dist, tmp_path / "clips" / f"d{i}.yuv")
        rows.append({"reference": "clips/ref.yuv", "distorted": f"clips/d{i}.yuv", "width": clip.width,
                     "height": clip.height, "mos": 1 + i, "codec": "jpeg"})
    return tmp_path, write_csv(tmp_path / "manifest.csv", rows)


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_row_is_scored_with_every_engine_and_keeps_its_columns(dataset, clip):
    folder, manifest = dataset
    output = str(folder / "scores.csv")
    summary = run_batch(manifest, ["psnr", "ssim"], output, workers=2)
    assert (summary.total, summary.scored, summary.failed, summary.skipped) == (5, 5, 0, 0)
    rows = _read(output)
    assert list(rows[0]) == ["reference", "distorted", "width", "height", "mos", "codec", "psnr", "ssim", *RESULT_COLUMNS]
    assert sorted(r["distorted"] for r in rows) == [f"clips/d{i}.yuv" for i in range(5)]
    expected = score("psnr", VideoInput(clip.ref, clip.width, clip.height), VideoInput(clip.dist, clip.width, clip.height))
    for row in rows:
        assert (row["status"], row["error"], row["frames"], row["codec"]) == ("ok", "", str(clip.frames), "jpeg")
        assert float(row["psnr"]) == pytest.approx(expected["pooled_metrics"]["psnr_y"]["mean"], rel=1e-9)
        assert 0 < float(row["ssim"]) < 1


def test_a_failing_row_is_recorded_and_the_batch_goes_on(dataset):
    folder, manifest = dataset
    (folder / "clips" / "d2.yuv").unlink()
    (folder / "clips" / "d3.yuv").write_bytes(b"\0" * 100)
    output = str(folder / "scores.csv")
    summary = run_batch(manifest, ["psnr"], output, workers=1)
    assert (summary.scored, summary.failed) == (3, 2)
    errors = {r["distorted"]: r["error"] for r in _read(output) if r["status"] == "failed"}
    assert errors["clips/d2.yuv"] == f"psnr: {folder / 'clips' / 'd2.yuv'}: no such file"
    assert "psnr: " in errors["clips/d3.yuv"] and "not a whole number of 128x96 yuv420p frames" in errors["clips/d3.yuv"]
    # Rerunning skips every recorded row; --retry-failed scores the failed ones again once fixed.
    assert run_batch(manifest, ["psnr"], output).skipped == 5
    shutil.copy(folder / "clips" / "d0.yuv", folder / "clips" / "d2.yuv")
    shutil.copy(folder / "clips" / "d0.yuv", folder / "clips" / "d3.yuv")
    summary = run_batch(manifest, ["psnr"], output, retry_failed=True)
    assert (summary.skipped, summary.scored, summary.failed) == (3, 2, 0)
    rows = _read(output)
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}


def test_an_interrupted_batch_resumes_and_writes_every_row_once(dataset):
    folder, manifest = dataset
    output = str(folder / "scores.csv")

    def interrupt_after_two(done, total, failed):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(manifest, ["ssim"], output, workers=1, progress=interrupt_after_two)
    assert len(_read(output)) == 2
    with open(output, "a") as handle:
        handle.write("clips/ref.yuv,clips/d4.yuv,128,96,5,jp")  # a row torn by a crash mid-write
    summary = run_batch(manifest, ["ssim"], output)
    assert (summary.skipped, summary.scored) == (2, 3)
    assert sorted(r["distorted"] for r in _read(output)) == [f"clips/d{i}.yuv" for i in range(5)]


def test_a_rerun_reports_rows_that_failed_before_and_takes_the_engines_in_any_order(dataset):
    folder, manifest = dataset
    for i in range(5):
        (folder / "clips" / f"d{i}.yuv").unlink()
    output = str(folder / "scores.csv")
    first = run_batch(manifest, ["psnr", "ssim"], output, workers=1)
    assert (first.scored, first.failed, first.failed_before) == (0, 5, 0)
    header = _read(output)[0].keys()
    rerun = run_batch(manifest, ["ssim", "psnr"], output)  # the same engines, named the other way round
    assert (rerun.skipped, rerun.scored, rerun.failed, rerun.failed_before) == (5, 0, 0, 5)
    assert _read(output)[0].keys() == header and len(_read(output)) == 5  # nothing rewritten, nothing added
    shutil.copy(folder / "clips" / "ref.yuv", folder / "clips" / "d1.yuv")
    retried = run_batch(manifest, ["ssim", "psnr"], output, retry_failed=True)
    assert (retried.skipped, retried.scored, retried.failed, retried.failed_before) == (0, 1, 4, 0)
    rows = {r["distorted"]: r for r in _read(output)}
    assert len(rows) == 5 and rows["clips/d1.yuv"]["status"] == "ok" and float(rows["clips/d1.yuv"]["ssim"]) == 1.0
    assert run_batch(manifest, ["psnr", "ssim"], output).failed_before == 4


def test_resuming_needs_the_same_columns(dataset):
    folder, manifest = dataset
    output = str(folder / "scores.csv")
    run_batch(manifest, ["psnr"], output)
    with pytest.raises(InputError, match="this run writes .*ssim.*choose another output"):
        run_batch(manifest, ["psnr", "ssim"], output)


def test_bad_batches_fail_before_writing_anything(dataset, tmp_path):
    folder, manifest = dataset
    output = folder / "scores.csv"
    cases = [
        (lambda: run_batch(manifest, ["psnrr"], str(output)), ModelError, "unknown engine 'psnrr'"),
        (lambda: run_batch(manifest, [], str(output)), InputError, "no engine given"),
        (lambda: run_batch(manifest, ["psnr", "psnr"], str(output)), InputError, "would both write column 'psnr'"),
        (lambda: run_batch(manifest, ["psnr"], str(output), workers=-1), InputError, "--workers must be 0"),
        (lambda: run_batch(manifest, ["psnr"], str(output), threads=10**6), InputError, "--threads must be 0"),
        (lambda: run_batch(manifest, ["psnr"], str(output), pool="median"), InputError, "unknown pooling 'median'"),
        (lambda: run_batch(str(folder / "none.csv"), ["psnr"], str(output)), InputError, "none.csv: no such file"),
        (lambda: run_batch(manifest, ["psnr"], str(folder / "no" / "out.csv")), InputError, "does not exist"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert not output.exists()


@pytest.mark.parametrize("rows, message", [
    ([{"ref": "a", "distorted": "b"}], "no column 'reference'"),
    ([{"reference": "a", "distorted": "b"}, {"reference": "c", "distorted": "b"}], "line 3: distorted 'b' is already on line 2"),
    ([{"reference": "a", "distorted": "b", "width": "wide"}], "line 2: width 'wide' is not a positive whole number"),
    ([{"reference": "", "distorted": "b"}], "line 2: no reference path"),
    ([{"reference": "a", "distorted": "b", "fps": "fast"}], "line 2: fps 'fast' is not a number"),
    ([{"reference": "a", "distorted": "b", "fps": "nan"}], "line 2: fps: frame rate must be a finite number"),
    ([{"reference": "a", "distorted": "b", "fps": "-25"}], "line 2: fps: frame rate must be greater than 0"),
])
def test_manifest_errors_name_the_line(tmp_path, write_csv, rows, message):
    with pytest.raises(InputError, match=message):
        read_manifest(write_csv(tmp_path / "m.csv", rows))


@pytest.mark.parametrize("text, message", [
    ("reference,distorted,width,height\na,b,128\n", "line 2 has 3 fields, the header 4"),
    ("reference,distorted,width,height\na,b,128,96,7\n", "line 2 has 5 fields, the header 4"),
])
def test_manifest_rows_with_too_few_or_too_many_fields_are_refused(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_manifest(str(tmp_path / "m.csv"))


def test_a_row_fps_overrides_the_default_fps(tmp_path, write_csv):
    rows = [{"reference": "a", "distorted": "b", "fps": "29.97"}, {"reference": "a", "distorted": "c", "fps": ""}]
    manifest = read_manifest(write_csv(tmp_path / "m.csv", rows), fps=25)
    assert [(row.reference.fps, row.distorted.fps) for row in manifest.rows] == [(29.97, 29.97), (25, 25)]


@pytest.mark.parametrize("column, engine", [("status", "psnr"), ("seconds", "psnr"), ("frames", "psnr"),
                                            ("error", "psnr"), ("ssim", "ssim")])
def test_a_manifest_column_named_like_an_output_column_is_refused(dataset, write_csv, column, engine):
    folder, _ = dataset
    manifest = write_csv(folder / "clash.csv", [{"reference": "clips/ref.yuv", "distorted": "clips/d0.yuv",
                                                  "width": 128, "height": 96, column: "x"}])
    with pytest.raises(InputError, match=f"clash.csv: column '{column}' is .*rename it in the manifest"):
        run_batch(manifest, [engine], str(folder / "out.csv"))
    assert not (folder / "out.csv").exists()
