"""Bad input across every command, as a user types it: each case must exit 2 with exactly one ``vqa-rt: error:``
line on stderr and no traceback, write nothing, and leave every input byte-identical (also through symbolic and
hard links). Signals and closed streams: results computed so far are kept, marked incomplete with the reason,
and no temporary file is left."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

W, H = 128, 96
RAW = ["-w", str(W), "-h", str(H)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, fr_export, qpmap_export, nr_export):
    """A folder of inputs: a clip, the three models, a manifest, a scores table, a checkpoint, a config, links."""
    from vqa_rt.export.models.checkpoint import random_init, save_checkpoint
    from vqa_rt.export.models.spec import get_spec
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("matrix")
    make_test_clip(str(folder / "ref.yuv"), str(folder / "dist.yuv"), W, H, 6, seed=2)
    for source, name in ((fr_export.path, "fr.onnx"), (qpmap_export.path, "qp.onnx"), (nr_export.path, "nr.onnx")):
        shutil.copy(source, folder / name)
    (folder / "ref-link.yuv").symlink_to(folder / "ref.yuv")
    os.link(folder / "ref.yuv", folder / "ref-hard.yuv")
    (folder / "manifest.csv").write_text(f"reference,distorted,width,height\nref.yuv,dist.yuv,{W},{H}\n")
    (folder / "status.csv").write_text(f"reference,distorted,width,height,status\nref.yuv,dist.yuv,{W},{H},x\n")
    (folder / "scores.csv").write_text("reference,distorted,mos,psnr\n" + "".join(
        f"r{i // 3},d{i},{1 + i % 5},{30 + i}\n" for i in range(9)))
    save_checkpoint(random_init(get_spec("qpmap"), seed=0), str(folder / "q.pt"), "qpmap")
    (folder / "config.json").write_text("{}\n")
    out = folder / "out"
    out.mkdir()
    shutil.copy(folder / "ref.yuv", out / "fr.json")  # an input that sits where `run -o out` writes
    return folder


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# (command line, with {w} for the workspace folder; what the error line must contain)
CASES = {
    # outputs that are inputs, or the same file twice
    "score -o the reference": ("score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/ref.yuv",
                               "ref.yuv: this output is the input"),
    "score --csv the distorted": ("score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} --csv {w}/dist.yuv",
                                  "dist.yuv: this output is the input"),
    "score -o X --csv X": ("score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/x.json --csv {w}/x.json",
                           "x.json: written twice"),
    "score -o a symlink to the reference": (
        "score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/ref-link.yuv", "this output is the input"),
    "score -o a hard link to the reference": (
        "score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/ref-hard.yuv", "this output is the input"),
    "score -o the model": ("score --engine {w}/fr.onnx -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/fr.onnx",
                           "fr.onnx: this output is the input"),
    "nr score -o the video": ("score --engine {w}/nr.onnx -d {w}/dist.yuv {raw} --fps 25 -o {w}/dist.yuv",
                              "this output is the input"),
    "qpmap -o the video": ("qpmap --method activity -i {w}/ref.yuv {raw} -o {w}/ref.yuv --format csv",
                           "ref.yuv: this output is the input"),
    "qpmap --summary the video": ("qpmap --method activity -i {w}/ref.yuv {raw} -o {w}/m.npy --summary {w}/ref.yuv",
                                  "this output is the input"),
    "qpmap -o X --summary X": ("qpmap --method activity -i {w}/ref.yuv {raw} -o {w}/m.csv --format csv "
                               "--summary {w}/m.csv", "written twice"),
    "qpmap -o the model": ("qpmap --engine {w}/qp.onnx -i {w}/ref.yuv {raw} -o {w}/qp.onnx --format csv",
                           "qp.onnx: this output is the input"),
    "run --jsonl the source": ("run -s {w}/ref.yuv -d {w}/dist.yuv {raw} --fr psnr --jsonl {w}/ref.yuv",
                               "ref.yuv: this output is the input"),
    "run --jsonl the model": ("run -s {w}/ref.yuv -d {w}/dist.yuv {raw} --fr {w}/fr.onnx --jsonl {w}/fr.onnx",
                              "this output is the input"),
    "run -o a folder holding an input": ("run -s {w}/out/fr.json -d {w}/dist.yuv {raw} --fr psnr -o {w}/out",
                                         "fr.json: this output is the input"),
    "run --jsonl a file it also writes": ("run -s {w}/ref.yuv -d {w}/dist.yuv {raw} --fr psnr -o {w}/out "
                                          "--jsonl {w}/out/run.json", "written twice"),
    "score-batch -o the manifest": ("score-batch {w}/manifest.csv --engine psnr -o {w}/manifest.csv",
                                    "manifest.csv: this output is the input"),
    "score-batch -o a row's video": ("score-batch {w}/manifest.csv --engine psnr -o {w}/dist.yuv",
                                     "dist.yuv: this output is the input"),
    "score-batch -o the model": ("score-batch {w}/manifest.csv --engine {w}/fr.onnx -o {w}/fr.onnx",
                                 "this output is the input"),
    "eval --csv the scores": ("eval {w}/scores.csv -m psnr --csv {w}/scores.csv", "scores.csv: this output is the input"),
    "eval --json the scores": ("eval {w}/scores.csv -m psnr --json {w}/scores.csv", "this output is the input"),
    "eval --csv X --json X": ("eval {w}/scores.csv -m psnr --csv {w}/t.out --json {w}/t.out", "written twice"),
    "quantize -o the model": ("quantize {w}/nr.onnx -o {w}/nr.onnx --mode int8 --calibration {w}/dist.yuv {raw} "
                              "--fps 25", "nr.onnx: this output is the input"),
    "quantize --report the video": ("quantize {w}/nr.onnx -o {w}/q.onnx --mode int8 --calibration {w}/dist.yuv {raw} "
                                    "--fps 25 --report {w}/dist.yuv", "dist.yuv: this output is the input"),
    "quantize -o X --report X": ("quantize {w}/nr.onnx -o {w}/q.onnx --mode int8 --calibration {w}/dist.yuv {raw} "
                                 "--fps 25 --report {w}/q.onnx", "written twice"),
    "export --output the checkpoint": ("export qpmap --checkpoint {w}/q.pt --output {w}/q.pt",
                                       "q.pt: this output is the input"),
    "export --output the config": ("export qpmap --random-init 0 --config {w}/config.json --output {w}/config.json",
                                   "config.json: this output is the input"),
    "init --output the config": ("init qpmap --config {w}/config.json --output {w}/config.json",
                                 "this output is the input"),
    "make-clip -r a -d a": ("make-clip -r {w}/a.yuv -d {w}/a.yuv -w 64 -h 64 --frames 2", "a.yuv: written twice"),
    "make-clip -d a link to -r": ("make-clip -r {w}/ref.yuv -d {w}/ref-link.yuv -w 64 -h 64 --frames 2",
                                  "written twice"),
    "build-engine to a link to the model": ("build-engine {w}/qp.onnx -o {w}/qp-link.plan --target sm86",
                                            "qp-link.plan: this output is the input"),
    # out-of-range samples
    "8-bit video read as 10-bit (psnr)": ("score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} "
                                          "--pix-fmt yuv420p10le -o {w}/s.json", "frame 0, plane Y: sample"),
    "8-bit video read as 10-bit (qpmap)": ("qpmap --method activity -i {w}/ref.yuv {raw} --pix-fmt yuv420p10le "
                                           "-o {w}/m.csv --format csv", "outside 10-bit range"),
    # engines and models that cannot be used
    "score with a missing engine": ("score --engine {w}/none.onnx -r {w}/ref.yuv -d {w}/dist.yuv {raw}",
                                    "no such model file"),
    "score with a QP-map model": ("score --engine {w}/qp.onnx -r {w}/ref.yuv -d {w}/dist.yuv {raw} -o {w}/s.json",
                                  "qpmap"),
    "build-engine for sm90 with TensorRT for RTX": ("build-engine {w}/qp.onnx -o {w}/qp.plan --target sm90",
                                                    "full TensorRT"),
    "build-engine for an unknown target": ("build-engine {w}/qp.onnx -o {w}/qp.plan --target sm8x",
                                           "unknown target 'sm8x'"),
    "build-engine of a video": ("build-engine {w}/ref.yuv -o {w}/qp.plan --target sm86", "ref.yuv"),
    "inspect a missing file": ("inspect {w}/none.onnx", "no such model file"),
    "inspect a video": ("inspect {w}/ref.yuv", "ref.yuv"),
    "score-batch of a missing manifest": ("score-batch {w}/none.csv --engine psnr -o {w}/b.csv", "none.csv"),
    "eval of a missing column": ("eval {w}/scores.csv -m vmaf", "no column 'vmaf'"),
    # option values and manifests (more in test_cli.py::test_bad_option_values_get_one_line_exit_2_and_write_nothing)
    "qpmap --slope inf": ("qpmap --method activity -i {w}/ref.yuv {raw} -o {w}/m.csv --format csv --slope inf",
                          "slope"),
    "serve --drain-timeout -5": ("serve --socket {w}/s.sock --fr psnr --drain-timeout -5", "drain"),
    "score-batch of a manifest with a status column": (
        "score-batch {w}/status.csv --engine psnr -o {w}/b.csv", "status"),
    "eval --plots onto a file": ("eval {w}/scores.csv -m psnr --csv {w}/t.csv --plots {w}/scores.csv", "scores.csv"),
    "score --threads 2000": ("score --engine psnr -r {w}/ref.yuv -d {w}/dist.yuv {raw} --threads 2000", "threads"),
    "qpmap with an unknown format": ("qpmap --method activity -i {w}/ref.yuv {raw} -o {w}/m.x --format x265x",
                                     "x265x"),
}


def _args(template: str, folder: Path) -> list[str]:
    return template.format(w=folder, raw=" ".join(RAW)).split()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(cli, workspace, case):
    if case == "build-engine to a link to the model":
        link = workspace / "qp-link.plan"
        if not link.is_symlink():
            link.symlink_to(workspace / "qp.onnx")
    template, message = CASES[case]
    inputs, files = digest(workspace), listing(workspace)
    result = cli(*_args(template, workspace))
    stderr = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, stderr)
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: "), stderr
    assert message in stderr, stderr
    assert listing(workspace) == files  # nothing written, no temporary file left
    assert digest(workspace) == inputs  # every input byte-identical


def test_the_matrix_covers_every_command_that_reads_input():
    commands = {template.split()[0] for template, _ in CASES.values()}
    assert commands == {"score", "qpmap", "run", "score-batch", "eval", "quantize", "export", "init", "make-clip",
                        "build-engine", "inspect", "serve"}
    assert len(CASES) >= 40


# ---------------------------------------------------------------- signals and closed streams

@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """A clip the FR model takes several seconds to score."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("long")
    make_test_clip(str(folder / "ref.yuv"), str(folder / "dist.yuv"), 320, 240, 240, seed=3)
    return folder


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqa_rt.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for_frames(path: Path, frames: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``path`` (a JSON snapshot) holds at least ``frames`` frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(path.read_text())["frames"]) >= frames:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"{path} never held {frames} frames: {process.communicate()[1].decode()[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_score_keeps_the_frames_scored(fr_export, long_clip, tmp_path, sig, status):
    out, csv = tmp_path / "s.json", tmp_path / "s.csv"
    process = _start("score", "--engine", fr_export.path, "-r", long_clip / "ref.yuv", "-d", long_clip / "dist.yuv",
                     "-w", 320, "-h", 240, "-o", out, "--csv", csv)
    _wait_for_frames(out, 3, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    name = signal.Signals(sig).name
    assert process.returncode == status
    assert stderr.decode().splitlines()[-1] == (f"vqa-rt: interrupted by {name} (results computed so far were kept "
                                                "in the output files, marked incomplete)")
    result = json.loads(out.read_text())
    assert result["complete"] is False and result["error"] == f"interrupted by {name}"
    assert 3 <= len(result["frames"]) < 240 and result["pooled_metrics"]
    assert len(csv.read_text().splitlines()) == len(result["frames"]) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.json"]  # no temporary file left


@pytest.mark.slow
def test_sigterm_during_run_writes_the_summary_and_no_temporary_files(fr_export, long_clip, tmp_path):
    out = tmp_path / "out"
    process = _start("run", "-s", long_clip / "ref.yuv", "-d", long_clip / "dist.yuv", "-w", 320, "-h", 240,
                     "--fr", fr_export.path, "--qp-method", "activity", "--qp-format", "npy", "-o", out)
    _wait_for_frames(out / "fr.json", 3, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143
    summary = json.loads((out / "run.json").read_text())
    assert summary["complete"] is False and summary["error"] == "interrupted by SIGTERM"
    assert summary["engines"]["fr"]["frames"] >= 3 and not summary["engines"]["fr"]["complete"]
    assert sorted(p.name for p in out.iterdir()) == ["fr.csv", "fr.json", "run.json"]  # maps only when complete


@pytest.mark.parametrize("closed", ["stderr", "stdout", "both"])
def test_closed_standard_streams_lose_no_results(workspace, tmp_path, closed):
    out = tmp_path / "s.json"
    redirect = {"stderr": "2>&-", "stdout": ">&-", "both": ">&- 2>&-"}[closed]
    command = (f"{sys.executable} -m vqa_rt.cli score --engine psnr -r {workspace}/ref.yuv -d {workspace}/dist.yuv "
               f"{' '.join(RAW)} -o {out} {redirect}")
    result = subprocess.run(["bash", "-c", command], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["complete"] is True


def test_a_reader_that_closes_stdout_early_loses_no_results(workspace, tmp_path):
    out = tmp_path / "s.json"
    command = (f"{sys.executable} -m vqa_rt.cli run -s {workspace}/ref.yuv -d {workspace}/dist.yuv {' '.join(RAW)} "
               f"--fr psnr -o {tmp_path / 'run'} --jsonl - | head -c 1 > /dev/null; echo ${{PIPESTATUS[0]}} > {out}")
    subprocess.run(["bash", "-c", command], check=True, timeout=120)
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["engines"]["fr"]["frames"] >= 1 and (summary["complete"] or summary["error"])
    assert int(out.read_text()) in (0, 1)  # 1: the reader went away before the end (documented)
