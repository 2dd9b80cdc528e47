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
    result = cli("export", "nr", "--output", tmp_path / "x.onnx")
    assert result.returncode == 2 and b"no trained nr weights ship with vqa-rt: give --checkpoint or --random-init" \
        in result.stderr
    result = cli("export", "fr", "--checkpoint", checkpoint, "--random-init", 0, "--output", tmp_path / "x.onnx")
    assert result.returncode == 2 and b"give at most one of --checkpoint and --random-init" in result.stderr


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


RAW = ["-w", "128", "-h", "96"]
SCORE = ["score", "--engine", "psnr", "-r", "{ref}", "-d", "{dist}", *RAW, "-o", "{out}"]
RUN = ["run", "-s", "{ref}", "-d", "{dist}", *RAW, "-o", "{out}"]
QPMAP = ["qpmap", "-i", "{ref}", *RAW, "--method", "activity", "-o", "{out}"]
EXPORT = ["export", "--random-init", "0", "--no-validate", "-o", "{out}"]
SERVE = ["serve", "--socket", "{out}", "--fr", "psnr"]

# Option values that must be refused in one line before any work (class: no value reaches a traceback or a hang).
BAD_VALUES = {
    "huge analysis size": ([*SCORE, "--analysis-size", "100000x100000"], "analysis size width must be at most 8192"),
    "malformed analysis size": ([*SCORE, "--analysis-size", "640by360"], "--analysis-size: expected WIDTHxHEIGHT"),
    "fps inf": ([*SCORE, "--fps", "inf"], "frame rate must be a finite number, got inf"),
    "fps nan": ([*SCORE, "--fps", "nan"], "frame rate must be a finite number, got nan"),
    "fps 0": ([*SCORE, "--fps", "0"], "frame rate must be greater than 0"),
    "fps negative": ([*SCORE, "--fps", "-5"], "frame rate must be greater than 0"),
    "sample fps inf": ([*SCORE, "--fps", "25", "--sample-fps", "inf"], "sampling rate (frames per second) must be a finite"),
    "max frames beyond any video": ([*SCORE, "--max-frames", "1" + "0" * 20], "max frames must be at most"),
    "huge batch size": ([*SCORE, "--batch-size", "100000"], "batch size must be at most 1024"),
    "threads 2000": ([*SCORE, "--threads", "2000"], "--threads must be 0 (automatic) to"),
    "negative threads": ([*QPMAP, "--threads", "-1"], "--threads must be 0 (automatic) to"),
    "both from stdin": (["score", "--engine", "psnr", "-r", "-", "-d", "-", *RAW, "-o", "{out}"],
                        "the reference and the distorted video cannot both be read from stdin"),
    "run both from stdin": (["run", "-s", "-", "-d", "-", *RAW, "--fr", "psnr", "-o", "{out}"],
                            "cannot both be read from stdin"),
    "run nr and qpmap on raw YUV without fps": ([*RUN, "--nr", "{nr}", "--qpmap", "{qp}"],
                                                "needs the video's frame rate"),
    "run fps inf": ([*RUN, "--fr", "psnr", "--fps", "inf"], "frame rate must be a finite number"),
    "run nr fps nan": ([*RUN, "--nr", "{nr}", "--fps", "5", "--nr-fps", "nan"], "must be a finite number"),
    "slope inf": ([*QPMAP, "--slope", "inf"], "slope must be a finite number, got inf"),
    "beta -inf": ([*QPMAP, "--beta", "-inf"], "beta must be a finite number, got -inf"),
    "make-clip odd width": (["make-clip", "-r", "{out}", "-d", "{out2}", "-w", "63"], "must be positive and even"),
    "make-clip huge width": (["make-clip", "-r", "{out}", "-d", "{out2}", "-w", "100000"], "width must be at most 8192"),
    "make-clip no frames": (["make-clip", "-r", "{out}", "-d", "{out2}", "--frames", "0"], "frames must be 1 or more"),
    "export opset 5": (["export", "fr", *EXPORT[1:], "--opset", "5"],
                       "--opset 5: the fr model exports at opsets 19.."),
    "export opset below the exporter's": (["export", "qpmap", *EXPORT[1:], "--opset", "17"], "exports at opsets 18.."),
    "export config not an object": (["export", "fr", *EXPORT[1:], "--config", "{list_json}"],
                                    "a fr config must be a JSON object of fields, got list"),
    "export config of wrong types": (["export", "fr", *EXPORT[1:], "--config", "{types_json}"],
                                     "fr config field 'trunk_blocks' must be a list, got 'x'"),
    "export config the model cannot take": (["export", "qpmap", *EXPORT[1:], "--config", "{short_json}"],
                                            "the qpmap config does not make a model"),
    "serve drain timeout negative": ([*SERVE, "--drain-timeout", "-5"], "--drain-timeout (seconds) must be at least 0"),
    "serve drain timeout inf": ([*SERVE, "--drain-timeout", "inf"], "--drain-timeout (seconds) must be a finite"),
    "serve threads": ([*SERVE, "--threads", "100000"], "--threads must be 0 (automatic) to"),
}


@pytest.fixture(scope="module")
def bad_value_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("values")
    files = {"list_json": "[1, 2]", "types_json": '{"trunk_blocks": "x"}', "short_json": '{"widths": [8, 16]}'}
    for name, text in files.items():
        (folder / f"{name}.json").write_text(text)
    return {name: str(folder / f"{name}.json") for name in files}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_option_values_get_one_line_exit_2_and_write_nothing(cli, clip, nr_export, qpmap_export, bad_value_files,
                                                                   tmp_path, case):
    args, message = BAD_VALUES[case]
    out, out2 = tmp_path / "out", tmp_path / "out2"
    values = dict(ref=clip.ref, dist=clip.dist, nr=nr_export.path, qp=qpmap_export.path, out=out, out2=out2,
                  **bad_value_files)
    result = cli(*(arg.format(**values) for arg in args), stdin=b"")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: "), stderr
    assert message in stderr, stderr
    assert not out.exists() and not out2.exists()


@pytest.mark.parametrize("breakage, message", [
    ({"config.json": "[1]"}, "config.json: must hold a JSON object, got list"),
    ({"config.json": "not json"}, "config.json: not valid JSON"),
    ({"preprocessor_config.json": "[]"}, "preprocessor_config.json: must hold a JSON object"),
    ({"preprocessor_config.json": '{"do_pad": true, "size": {"shortest_edge": 32}, "rescale_factor": "x"}'},
     "preprocessor_config.json: bad image processor settings"),
    ({"model.safetensors.index.json": '{"weight_map": 3}'}, "not a safetensors index"),
    ({"model.safetensors": None}, "missing model.safetensors"),
    ({"tokenizer.json": "garbage"}, "cannot load the tokenizer"),
])
def test_export_from_a_broken_checkpoint_directory_is_one_line(cli, llava_checkpoint, tmp_path, breakage, message):
    import shutil

    folder = tmp_path / "checkpoint"
    shutil.copytree(llava_checkpoint.path, folder)
    for name, text in breakage.items():
        (folder / name).unlink(missing_ok=True) if text is None else (folder / name).write_text(text)
    output = tmp_path / "nr.onnx"
    result = cli("export", "nr", "--checkpoint", folder, "-o", output, "--no-validate")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert stderr.startswith("vqa-rt: error: ") and message in stderr, stderr
    assert not output.exists()
