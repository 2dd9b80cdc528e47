"""``vqa-rt qpmap`` and ``vqa-rt export qpmap`` as a user runs them, and every bad input."""

import json
import sys

import numpy as np
import pytest

from vqa_rt.cli.app import main
from vqa_rt.runtime.frames.synthetic import make_test_clip

WIDTH, HEIGHT, FRAMES = 136, 72, 3


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("qpcli")
    path = str(folder / "clip.yuv")
    make_test_clip(path, str(folder / "unused.yuv"), WIDTH, HEIGHT, FRAMES, seed=2, distortion="none")
    return path


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``vqa-rt ARGS`` in this process (as the console script does); (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["vqa-rt", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_qpmap_from_an_untrained_engine_through_the_console_script(cli, qpmap_export, clip_path, tmp_path):
    output, summary = tmp_path / "maps.npy", tmp_path / "summary.json"
    result = cli("qpmap", "--engine", qpmap_export.path, "-i", clip_path, "-w", WIDTH, "-h", HEIGHT,
                 "--base-qp", 37, "--format", "npy", "-o", output, "--summary", summary)
    stderr, stdout = result.stderr.decode(), result.stdout.decode()
    assert result.returncode == 0, stderr
    assert "UNTRAINED" in stderr and stdout.rstrip().endswith("[untrained]")
    assert stdout.startswith(f"{FRAMES} frames, 9x5 cells of 16x16 (model), base QP 37")
    maps = np.load(output)
    assert maps.shape == (FRAMES, 5, 9) and maps.dtype == np.int8
    data = json.loads(summary.read_text())
    assert data["model"]["untrained"] is True and data["conversion"]["base_qp"] == 37
    assert [f["min_delta_qp"] for f in data["frames"]] == [int(m.min()) for m in maps]


def test_activity_method_writes_a_kvazaar_roi_file(monkeypatch, capsys, clip_path, tmp_path):
    output = tmp_path / "roi.txt"
    status, out, err = run_main(monkeypatch, capsys, "qpmap", "--method", "activity", "-i", clip_path,
                                "-w", WIDTH, "-h", HEIGHT, "--format", "kvazaar", "-o", output)
    assert status == 0, err
    assert "UNTRAINED" not in err and "[untrained]" not in out
    assert f"{FRAMES} frames, 3x2 cells of 64x64 (activity)" in out
    lines = output.read_text().splitlines()
    assert len(lines) == FRAMES * 3 and lines[0] == "3 2"
    assert all(len(line.split()) == 3 for i, line in enumerate(lines) if i % 3)


def test_export_qpmap_from_init_checkpoint(monkeypatch, capsys, tmp_path):
    checkpoint, onnx_path = tmp_path / "qp.pt", tmp_path / "qp.onnx"
    status, out, err = run_main(monkeypatch, capsys, "init", "qpmap", "--seed", 1, "--output", checkpoint)
    assert status == 0, err
    status, out, err = run_main(monkeypatch, capsys, "export", "qpmap", "--checkpoint", checkpoint,
                                "--output", onnx_path)
    assert status == 0, err
    assert "qpmap" in out and "UNTRAINED" in out and "validated against PyTorch" in out
    assert "256x384: qs" in out and "180x328: qs" in out


def test_help_lists_the_qpmap_command(monkeypatch, capsys):
    status, out, _ = run_main(monkeypatch, capsys, "--help")
    assert status == 0 and "qpmap" in out


def _bad_cases(tmp, clip_path, engine):
    raw = ["-i", clip_path, "-w", WIDTH, "-h", HEIGHT]
    frame = WIDTH * HEIGHT * 3 // 2
    with open(clip_path, "rb") as handle:
        partial = handle.read(frame + 100)
    (tmp / "partial.yuv").write_bytes(partial)
    (tmp / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 10)
    return {
        "missing video": (["--method", "activity", "-i", tmp / "none.yuv", "-w", WIDTH, "-h", HEIGHT],
                          "none.yuv: no such file"),
        "partial frame": (["--method", "activity", "-i", tmp / "partial.yuv", "-w", WIDTH, "-h", HEIGHT],
                          "is not a whole number of 136x72 yuv420p frames"),
        "raw without size": (["--method", "activity", "-i", clip_path], "raw YUV input needs width and height"),
        "corrupt engine": (["--engine", tmp / "garbage.onnx", *raw], "not a valid ONNX model"),
        "missing engine": (["--engine", tmp / "none.onnx", *raw], "no such model file"),
        "engine with activity": (["--engine", engine, "--method", "activity", *raw], "takes no engine"),
        "base QP out of range": (["--engine", engine, "--base-qp", 60, *raw], "base QP 60 is outside the hevc range"),
        "positive beta": (["--engine", engine, "--beta", 1.0, *raw], "beta must be negative"),
        "bad grid": (["--engine", engine, "--grid", 48, *raw], "grid must be one of 16, 32, 64, 128"),
        "x265 at grid 64": (["--engine", engine, "--format", "x265", "--grid", 64, *raw], "grid must be 16"),
        "missing output directory": (["--engine", engine, *raw, "-o", tmp / "nowhere" / "m.npy"],
                                     "does not exist"),
    }


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, clip_path, qpmap_export):
    tmp = tmp_path_factory.mktemp("qpbad")
    return tmp, _bad_cases(tmp, clip_path, qpmap_export.path)


@pytest.mark.parametrize("case", [
    "missing video", "partial frame", "raw without size", "corrupt engine", "missing engine",
    "engine with activity", "base QP out of range", "positive beta", "bad grid", "x265 at grid 64",
    "missing output directory",
])
def test_bad_input_gets_one_line_exit_2_and_writes_nothing(monkeypatch, capsys, bad_inputs, case):
    tmp, cases = bad_inputs
    args, message = cases[case]
    out_dir = tmp / case.replace(" ", "_")
    out_dir.mkdir()
    if "-o" not in args:
        args = [*args, "-o", out_dir / "maps.npy", "--summary", out_dir / "s.json"]
    status, _, err = run_main(monkeypatch, capsys, "qpmap", *args)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("vqa-rt: error: "), err
    assert message in err
    assert list(out_dir.iterdir()) == []


def test_kvazaar_binary_needs_a_bin_name(monkeypatch, capsys, clip_path, tmp_path):
    status, _, err = run_main(monkeypatch, capsys, "qpmap", "--method", "activity", "-i", clip_path, "-w", WIDTH,
                              "-h", HEIGHT, "--format", "kvazaar-bin", "-o", tmp_path / "roi.txt")
    assert status == 2 and "ends in .bin" in err and list(tmp_path.iterdir()) == []
