"""The vqa-rt command as a user runs it: help, the scoring command, and every bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_help_lists_commands_without_importing_torch_or_tensorrt():
    code = (
        "import sys\n"
        "from vqa_rt.cli.app import main\n"
        "sys.argv = ['vqa-rt', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'tensorrt', 'onnxruntime') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for command in ("init", "export", "score", "make-clip"):
        assert command in result.stdout
    assert "HEAVY []" in result.stdout


def test_score_writes_json_and_csv_without_torch(fr_export, clip, tmp_path):
    """Scoring an ONNX file must work with torch unimportable."""
    out, csv = tmp_path / "s.json", tmp_path / "s.csv"
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from vqa_rt.cli.app import main\n"
        f"sys.argv = ['vqa-rt', 'score', '--engine', {fr_export.path!r}, '-r', {clip.ref!r}, '-d', {clip.dist!r},"
        f" '-w', '{clip.width}', '-h', '{clip.height}', '-o', {str(out)!r}, '--csv', {str(csv)!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "UNTRAINED" in result.stderr and "[untrained]" in result.stdout
    data = json.loads(out.read_text())
    assert data["complete"] and len(data["frames"]) == clip.frames
    assert f"mean {data['pooled_metrics']['score']['mean']:.4f}" in result.stdout
    rows = csv.read_text().splitlines()
    assert rows[0] == "frameNum,score,spatial,temporal" and len(rows) == clip.frames + 1


def test_without_onnx_runtime_models_say_how_to_install_it_and_baselines_run(fr_export, clip):
    """ONNX Runtime is an extra (cpu or gpu, never both): without it, a model is one line saying which to
    install, while the baselines, which do not need it, still score."""

    def score_without_onnx_runtime(engine: str) -> subprocess.CompletedProcess:
        code = (
            "import sys\n"
            "sys.modules['onnxruntime'] = None\n"
            "from vqa_rt.cli.app import main\n"
            f"sys.argv = ['vqa-rt', 'score', '--engine', {engine!r}, '-r', {clip.ref!r}, '-d', {clip.dist!r},"
            f" '-w', '{clip.width}', '-h', '{clip.height}']\n"
            "main()\n"
        )
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    result = score_without_onnx_runtime(fr_export.path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "ONNX Runtime is not installed" in result.stderr and "pip install 'vqa-rt[cpu]'" in result.stderr
    result = score_without_onnx_runtime("psnr")
    assert result.returncode == 0 and f"{clip.frames} frames, PSNR-Y" in result.stdout, result.stderr


def test_export_and_init_from_the_cli(cli, tmp_path):
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"trunk_widths": [16, 32, 64, 128], "fusion_channels": 16, "head_hidden": 16}))
    checkpoint, onnx_path = tmp_path / "fr.pt", tmp_path / "fr.onnx"
    result = cli("init", "fr", "--seed", "4", "--config", config, "--output", checkpoint)
    assert result.returncode == 0 and checkpoint.exists()
    result = cli("export", "fr", "--checkpoint", checkpoint, "--output", onnx_path)
    assert result.returncode == 0, result.stderr
    assert b"UNTRAINED" in result.stdout and b"validated against PyTorch" in result.stdout
    result = cli("export", "fr", "--output", tmp_path / "x.onnx")
    assert result.returncode == 2 and b"exactly one of --checkpoint and --random-init" in result.stderr


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _y4m(width, height, frames, colorspace="420jpeg"):
    frame = bytes(width * height * 3 // 2)
    return f"YUV4MPEG2 W{width} H{height} F25:1 C{colorspace}\n".encode() + (b"FRAME\n" + frame) * frames


def _bad_cases(tmp, clip, fr_path):
    w, h = str(clip.width), str(clip.height)
    frame = clip.width * clip.height * 3 // 2
    raw = ["-w", w, "-h", h]
    with open(clip.ref, "rb") as handle:
        ref_bytes = handle.read()
    short = _write(tmp / "short.yuv", ref_bytes[: 4 * frame])
    corrupt = _write(tmp / "corrupt.onnx", b"\x08\x07garbage" * 10)
    return {
        "missing file": (["-r", str(tmp / "nope.yuv"), "-d", clip.dist, *raw], "nope.yuv: no such file"),
        "zero-length file": (["-r", _write(tmp / "empty.yuv", b""), "-d", clip.dist, *raw], "empty.yuv: is empty"),
        "partial frame": (
            ["-r", _write(tmp / "odd.yuv", ref_bytes[: 2 * frame + 1000]), "-d", clip.dist, *raw],
            "is not a whole number of 128x96 yuv420p frames (18432 bytes each): 2 whole frames and 1000 bytes remain",
        ),
        "frame-count mismatch": (["-r", clip.ref, "-d", short, *raw], "reference has 6 frames, distorted has 4: they must match"),
        "odd width": (["-r", clip.ref, "-d", clip.dist, "-w", "127", "-h", h], "must be positive and even"),
        "unsupported pixel format": (["-r", clip.ref, "-d", clip.dist, *raw, "--pix-fmt", "yuv422p"], "unsupported pixel format 'yuv422p'"),
        "8-bit video read as 10-bit": (["-r", clip.ref, "-d", clip.dist, *raw, "--pix-fmt", "yuv420p10le"],
                                       "frame 0, plane Y: sample"),
        "unsupported Y4M colour space": (["-r", _write(tmp / "c444.y4m", _y4m(64, 64, 1, "444")), "-d", clip.dist], "unsupported Y4M pixel format C444"),
        "malformed Y4M header": (["-r", _write(tmp / "bad.y4m", b"YUV4MPEG2 W64 Hxx\nFRAME\n"), "-d", clip.dist], "malformed Y4M header"),
        "raw without size": (["-r", clip.ref, "-d", clip.dist], "raw YUV input needs width and height"),
        "mismatched resolutions": (
            ["-r", _write(tmp / "a.y4m", _y4m(128, 96, 2)), "-d", _write(tmp / "b.y4m", _y4m(64, 64, 2))],
            "is 128x96 but distorted",
        ),
        "corrupt ONNX": (["-r", clip.ref, "-d", clip.dist, *raw], "corrupt.onnx: not a valid ONNX model", corrupt),
        "non-FR ONNX": (["-r", clip.ref, "-d", clip.dist, *raw], "not a vqa-rt model", str(tmp / "plain.onnx")),
        "missing engine": (["-r", clip.ref, "-d", clip.dist, *raw], "no such model file", str(tmp / "none.onnx")),
    }


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, clip, fr_export):
    tmp = tmp_path_factory.mktemp("bad")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp / "plain.onnx"))
    return tmp, _bad_cases(tmp, clip, fr_export.path)


CASE_NAMES = [
    "missing file", "zero-length file", "partial frame", "frame-count mismatch", "odd width",
    "unsupported pixel format", "8-bit video read as 10-bit", "unsupported Y4M colour space", "malformed Y4M header", "raw without size",
    "mismatched resolutions", "corrupt ONNX", "non-FR ONNX", "missing engine",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_gets_one_line_and_exit_2_and_writes_nothing(cli, bad_inputs, fr_export, case):
    tmp, cases = bad_inputs
    args, message, *engine = cases[case]
    output = tmp / f"{case.replace(' ', '_')}.json"
    result = cli("score", "--engine", engine[0] if engine else fr_export.path, *args, "-o", output)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: "), stderr
    assert message in stderr
    assert not output.exists()


def test_frame_count_mismatch_is_allowed_when_frames_are_limited(cli, bad_inputs, fr_export, clip):
    tmp, _ = bad_inputs
    result = cli("score", "--engine", fr_export.path, "-r", clip.ref, "-d", tmp / "short.yuv",
                 "-w", clip.width, "-h", clip.height, "--max-frames", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"3 frames")


def test_reads_the_distorted_video_from_stdin(cli, fr_export, clip):
    with open(clip.dist, "rb") as handle:
        result = cli("score", "--engine", fr_export.path, "-r", clip.ref, "-d", "-",
                     "-w", clip.width, "-h", clip.height, stdin=handle.read())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{clip.frames} frames".encode())


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("vqa-rt")
    assert script.exists(), f"{script} missing: install the package (make test does)"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "score" in result.stdout
