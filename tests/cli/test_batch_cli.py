"""``vqa-rt score-batch`` and baseline engines as a user runs them: a batch killed mid-run and
resumed, one-line errors for bad inputs."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest

ROWS = 100


@pytest.fixture(scope="module")
def big_manifest(tmp_path_factory):
    """ROWS distorted videos (hard links to one 12-frame clip) against one reference."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("batch")
    make_test_clip(str(folder / "ref.yuv"), str(folder / "d.yuv"), 192, 176, 12, seed=1, quality=30)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "width", "height"])
        for i in range(ROWS):
            os.link(folder / "d.yuv", folder / f"d{i:03d}.yuv")
            writer.writerow(["ref.yuv", f"d{i:03d}.yuv", 192, 176])
    return folder


def _data_rows(path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run_until(folder, output, rows_at_least: int, sig: int) -> subprocess.CompletedProcess:
    """Start a batch, wait until the output holds ``rows_at_least`` more rows, then send ``sig``."""
    before = len(_data_rows(output))
    process = subprocess.Popen(
        [sys.executable, "-m", "vqa_rt.cli", "score-batch", str(folder / "manifest.csv"), "--engine", "ssim",
         "--output", str(output), "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_data_rows(output)) < before + rows_at_least and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_killed_batch_resumes_and_ends_with_every_row_exactly_once(big_manifest, cli):
    output = big_manifest / "scores.csv"
    interrupted = _run_until(big_manifest, output, 2, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    after_interrupt = len(_data_rows(output))
    killed = _run_until(big_manifest, output, 2, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    after_kill = len(_data_rows(output))
    assert 2 <= after_interrupt < after_kill < ROWS, "the runs were not stopped mid-batch"
    finished = cli("score-batch", big_manifest / "manifest.csv", "--engine", "ssim", "--output", output)
    assert finished.returncode == 0, finished.stderr
    assert f"rows: {ROWS - after_kill} scored, 0 failed, {after_kill} already in".encode() in finished.stdout
    rows = _data_rows(output)
    assert sorted(r["distorted"] for r in rows) == [f"d{i:03d}.yuv" for i in range(ROWS)]
    assert {r["status"] for r in rows} == {"ok"} and len({r["ssim"] for r in rows}) == 1


def test_score_with_a_baseline_engine(cli, clip, tmp_path):
    output = tmp_path / "psnr.json"
    result = cli("score", "--engine", "psnr", "-r", clip.ref, "-d", clip.dist, "-w", clip.width, "-h", clip.height,
                 "-o", output)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{clip.frames} frames, PSNR-Y (dB 0..60): mean ".encode())
    assert b"UNTRAINED" not in result.stderr


@pytest.fixture(scope="module")
def bad_batch_inputs(tmp_path_factory, clip):
    folder = tmp_path_factory.mktemp("badbatch")
    (folder / "nocols.csv").write_text("ref,dist\na,b\n")
    (folder / "ok.csv").write_text(f"reference,distorted,width,height\n{clip.ref},{clip.dist},{clip.width},{clip.height}\n")
    fake = folder / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' TS psnr              VV->V      Calculate the PSNR'\n")
    fake.chmod(0o755)
    return folder


@pytest.mark.parametrize("manifest, engine, message", [
    ("none.csv", "psnr", "none.csv: no such file"),
    ("nocols.csv", "psnr", "no column 'reference' (columns: ref, dist)"),
    ("ok.csv", "psnrr", "unknown engine 'psnrr'"),
    ("ok.csv", "vmaf", "has no 'libvmaf' filter"),
])
def test_bad_batch_inputs_get_one_line_and_exit_2(bad_batch_inputs, manifest, engine, message):
    output = bad_batch_inputs / "out.csv"
    result = subprocess.run(
        [sys.executable, "-m", "vqa_rt.cli", "score-batch", str(bad_batch_inputs / manifest), "-e", engine, "-o", str(output)],
        capture_output=True, env={**os.environ, "VQA_RT_FFMPEG": str(bad_batch_inputs / "ffmpeg")}, timeout=120)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: ") and message in stderr
    assert not output.exists()


def _one_error_line(result: subprocess.CompletedProcess, message: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: "), stderr
    assert message in stderr, stderr


@pytest.mark.parametrize("text, args, message", [
    ("reference,distorted,width,height,status\n{ref},{dist},128,96,x\n", [],
     "column 'status' is one score-batch writes (frames, status, error, seconds and one per engine)"),
    ("reference,distorted,width,height,seconds\n{ref},{dist},128,96,1\n", [], "column 'seconds' is one score-batch"),
    ("reference,distorted,width,height,psnr\n{ref},{dist},128,96,30\n", [],
     "column 'psnr' is the one engine 'psnr' writes: rename it in the manifest"),
    ("reference,distorted,width,height\n{ref},{dist},128\n", [], "line 2 has 3 fields, the header 4"),
    ("reference,distorted,width,height\n{ref},{dist},128,96,1\n", [], "line 2 has 5 fields, the header 4"),
    ("reference,distorted,width,height,fps\n{ref},{dist},128,96,inf\n", [], "line 2: fps: frame rate must be a finite"),
    ("reference,distorted,width,height\n{ref},{dist},128,96\n", ["-e", "psnr"], "would both write column 'psnr'"),
    ("reference,distorted,width,height\n{ref},{dist},128,96\n", ["--fps", "nan"], "frame rate must be a finite number"),
    ("reference,distorted,width,height\n{ref},{dist},128,96\n", ["--workers", "100000"], "--workers must be 0"),
    ("reference,distorted,width,height\n{ref},{dist},128,96\n", ["--threads", "100000"], "--threads must be 0"),
    ("reference,distorted,width,height\n{ref},{dist},128,96\n", ["--sample-fps", "inf"], "must be a finite number"),
])
def test_bad_manifests_and_options_are_refused_before_anything_is_written(cli, clip, tmp_path, text, args, message):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text.format(ref=clip.ref, dist=clip.dist))
    output = tmp_path / "out.csv"
    _one_error_line(cli("score-batch", manifest, "-e", "psnr", "-o", output, *args), message)
    assert not output.exists()


def test_a_rerun_after_every_row_failed_reports_them_and_exits_1(cli, clip, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"reference,distorted,width,height\n{clip.ref},gone1.yuv,128,96\n{clip.ref},gone2.yuv,128,96\n")
    output = tmp_path / "out.csv"
    first = cli("score-batch", manifest, "-e", "psnr", "-e", "ssim", "-o", output)
    assert first.returncode == 1 and b"rows: 0 scored, 2 failed, 0 already in" in first.stdout, first.stderr
    before = output.read_bytes()
    rerun = cli("score-batch", manifest, "-e", "ssim", "-e", "psnr", "-o", output)  # engines in another order
    assert rerun.returncode == 1, rerun.stderr
    assert b"rows: 0 scored, 0 failed, 2 already in" in rerun.stdout and b"(2 of them failed, not retried)" in rerun.stdout
    stderr = rerun.stderr.decode()
    assert stderr.count("\n") == 1 and stderr.startswith("vqa-rt: failed rows: 2 (0 now, 2 earlier)"), stderr
    assert output.read_bytes() == before


def test_nr_rows_of_raw_yuv_take_the_fps_column_else_the_fps_option(cli, clip, nr_export, tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"reference,distorted,width,height,fps\n{clip.ref},{clip.dist},128,96,2\n"
                        f"{clip.ref},{clip.ref},128,96,\n")
    output = tmp_path / "out.csv"
    done = cli("score-batch", manifest, "-e", nr_export.path, "-o", output, "--fps", "5")
    assert done.returncode == 0, done.stderr
    frames = {row["distorted"]: row["frames"] for row in _data_rows(output)}
    assert frames == {clip.dist: "3", clip.ref: "2"}  # 1 frame per second of 6 frames: at 2 fps 0, 2, 4; at 5 fps 0, 5
