"""The NR commands as a user runs them: init/export with presets or a LLaVA checkpoint, score, quantize."""

import json
import sys

import numpy as np
import pytest

from vqa_rt.cli.app import main
from vqa_rt.runtime.frames.synthetic import make_test_clip

W, H = 64, 48


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``vqa-rt ARGS`` in this process (as the console script does); (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["vqa-rt", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """30 frames of 64x48: raw YUV, and the same as Y4M at 10 fps."""
    folder = tmp_path_factory.mktemp("nrcli")
    raw = folder / "clip.yuv"
    make_test_clip(str(folder / "ref.yuv"), str(raw), W, H, 30, seed=5, quality=15)
    frame = W * H * 3 // 2
    data = raw.read_bytes()
    y4m = folder / "clip.y4m"
    y4m.write_bytes(f"YUV4MPEG2 W{W} H{H} F10:1 C420jpeg\n".encode()
                    + b"".join(b"FRAME\n" + data[i:i + frame] for i in range(0, len(data), frame)))
    return folder, str(raw), str(y4m)


def test_init_and_export_with_a_preset(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "nr.pt"
    code, out, _ = run_main(monkeypatch, capsys, "init", "nr", "--seed", "1", "--config", "tiny", "-o", checkpoint)
    assert code == 0 and "untrained" in out
    code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--checkpoint", checkpoint, "-o", tmp_path / "a.onnx")
    assert code == 0, err
    assert "UNTRAINED" in out and "validated against PyTorch" in out and "batch 3 at 32x32" in out
    code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--random-init", "0", "--config", "tiny",
                              "--no-validate", "-o", tmp_path / "b.onnx")
    assert code == 0 and "random-init seed 0, UNTRAINED" in out, err


def test_export_from_a_llava_checkpoint_directory(monkeypatch, capsys, llava_checkpoint, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--checkpoint", llava_checkpoint.path,
                              "-o", tmp_path / "llava.onnx")
    assert code == 0, err
    assert "UNTRAINED" not in out and f"weights: {llava_checkpoint.path}" in out and "validated" in out


MPLUG = "tests/fixtures/mplug_owl2_tiny"


def test_export_mplug_owl2_and_onevision_checkpoints_and_a_clip_graph(monkeypatch, capsys, onevision_checkpoint,
                                                                       videos, tmp_path):
    for name, checkpoint in (("onevision", onevision_checkpoint.path), ("mplug", MPLUG)):
        code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--checkpoint", checkpoint,
                                  "-o", tmp_path / f"{name}.onnx")
        assert code == 0 and "validated against PyTorch" in out and err == "", err
    (tmp_path / "clip.json").write_text('{"frames": 3}')
    code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--checkpoint", MPLUG, "--config",
                              tmp_path / "clip.json", "-o", tmp_path / "clip.onnx")
    assert code == 0 and "batch 3 at 28x28" in out, err
    code, out, err = run_main(monkeypatch, capsys, "score", "--engine", tmp_path / "clip.onnx", "-d", videos[2],
                              "-o", tmp_path / "clip.json.out")
    assert code == 0 and out.startswith("3 frames") and "video score (mean-score)" in out, err


def test_streamed_weight_only_export_scores(monkeypatch, capsys, videos, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, "export", "nr", "--checkpoint", MPLUG, "--weight-only", "4",
                              "-o", tmp_path / "nr4.onnx")
    assert code == 0 and "int4-weight-only" in out and "quantized while streaming" in out, err
    code, out, err = run_main(monkeypatch, capsys, "score", "--engine", tmp_path / "nr4.onnx", "-d", videos[2],
                              "--nr-protocol", "mean-logits")
    assert code == 0 and "video score (mean-logits)" in out, err


@pytest.mark.parametrize("args, message", [
    (["export", "nr", "--random-init", "0", "--weight-only", "4"], "--weight-only streams an nr checkpoint directory"),
    (["export", "nr", "--checkpoint", MPLUG, "--weight-only", "2"], "streamed export quantizes weights to 8 or 4 bits"),
    (["score", "--engine", "x.onnx", "-d", "x.y4m", "--nr-protocol", "median"], "unknown NR protocol 'median'"),
])
def test_new_option_errors_are_one_line(monkeypatch, capsys, tmp_path, args, message):
    code, _, err = run_main(monkeypatch, capsys, *args, *(["-o", tmp_path / "x.onnx"] if args[0] == "export" else []))
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("args, message", [
    (["export", "fr", "--random-init", "0", "--config", "tiny"], "fr has no config preset 'tiny' (presets: none"),
    (["export", "nr", "--random-init", "0", "--config", "huge"], "nr has no config preset 'huge' (presets: tiny, tiny-onevision, tiny-mplug-owl2, small"),
    (["export", "nr", "--checkpoint", "/nonexistent/llava"], "no such checkpoint file"),
])
def test_export_errors(monkeypatch, capsys, tmp_path, args, message):
    code, _, err = run_main(monkeypatch, capsys, *args, "-o", tmp_path / "x.onnx")
    assert code == 2 and message in err and err.count("\n") == 1


def test_score_writes_json_and_csv_with_level_probabilities(monkeypatch, capsys, nr_export, videos, tmp_path):
    output, csv = tmp_path / "s.json", tmp_path / "s.csv"
    code, out, err = run_main(monkeypatch, capsys, "score", "--engine", nr_export.path, "-d", videos[2],
                              "-o", output, "--csv", csv)
    assert code == 0, err
    assert out.startswith("3 frames, NR score (quality level (Q-Align) 1..5): mean ") and "[untrained]" in out
    assert "UNTRAINED" in err
    data = json.loads(output.read_text())
    assert data["complete"] and [f["frameNum"] for f in data["frames"]] == [0, 10, 20]
    assert csv.read_text().splitlines()[0] == ("frameNum,score,p_excellent,p_good,p_fair,p_poor,p_bad,logit_excellent,"
                                               "logit_good,logit_fair,logit_poor,logit_bad")
    assert f"video score (mean-score): {data['video']['score']:.4f} [untrained]" in out


def test_score_raw_yuv_with_its_frame_rate_or_sampled_by_count(monkeypatch, capsys, nr_export, videos):
    raw = ["-d", videos[1], "-w", W, "-h", H]
    code, out, err = run_main(monkeypatch, capsys, "score", "--engine", nr_export.path, *raw, "--fps", "10")
    assert code == 0 and out.startswith("3 frames"), err
    code, out, err = run_main(monkeypatch, capsys, "score", "--engine", nr_export.path, *raw, "--sample-frames", "6")
    assert code == 0 and out.startswith("6 frames"), err


def _bad_cases(folder, raw, y4m, nr_path):
    data = open(raw, "rb").read()
    frame = W * H * 3 // 2
    (folder / "empty.yuv").write_bytes(b"")
    (folder / "odd.yuv").write_bytes(data[: 2 * frame + 100])
    (folder / "bad.y4m").write_bytes(b"YUV4MPEG2 W64 Hxx\nFRAME\n")
    (folder / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    sized = ["-w", W, "-h", H, "--fps", "10"]
    return {
        "missing file": (["-d", folder / "nope.yuv", *sized], "nope.yuv: no such file"),
        "zero-length file": (["-d", folder / "empty.yuv", *sized], "empty.yuv: is empty"),
        "partial frame": (["-d", folder / "odd.yuv", *sized], "2 whole frames and 100 bytes remain"),
        "odd width": (["-d", raw, "-w", "63", "-h", H, "--fps", "10"], "must be positive and even"),
        "unsupported pixel format": (["-d", raw, *sized, "--pix-fmt", "yuv444p"], "unsupported pixel format"),
        "malformed Y4M header": (["-d", folder / "bad.y4m"], "malformed Y4M header"),
        "raw without size": (["-d", raw], "raw YUV input needs width and height"),
        "raw without frame rate": (["-d", raw, "-w", W, "-h", H], "needs the video's frame rate"),
        "a reference for an NR engine": (["-d", y4m, "-r", y4m], "takes no reference video (drop --reference)"),
        "two samplings": (["-d", y4m, "--frame-stride", "2", "--sample-fps", "1"], "choose one of frame stride"),
        "corrupt ONNX": (["-d", y4m], "corrupt.onnx: not a valid ONNX model", str(folder / "corrupt.onnx")),
        "missing engine": (["-d", y4m], "no such model file", str(folder / "none.onnx")),
    }


@pytest.mark.parametrize("case", [
    "missing file", "zero-length file", "partial frame", "odd width", "unsupported pixel format",
    "malformed Y4M header", "raw without size", "raw without frame rate", "a reference for an NR engine",
    "two samplings", "corrupt ONNX", "missing engine",
])
def test_bad_score_input_gets_one_line_and_exit_2_and_writes_nothing(monkeypatch, capsys, nr_export, videos, case):
    folder, raw, y4m = videos
    args, message, *engine = _bad_cases(folder, raw, y4m, nr_export.path)[case]
    output = folder / f"{case.replace(' ', '_')}.json"
    code, _, err = run_main(monkeypatch, capsys, "score", "--engine", engine[0] if engine else nr_export.path,
                            *args, "-o", output)
    assert code == 2 and err.startswith("vqa-rt: error: ") and err.count("\n") == 1, err
    assert message in err and not output.exists()


def test_quantize_int8_prints_and_writes_the_fidelity_report(monkeypatch, capsys, nr_export, videos, tmp_path):
    output, report = tmp_path / "nr.int8.onnx", tmp_path / "report.json"
    code, out, err = run_main(monkeypatch, capsys, "quantize", nr_export.path, "--mode", "int8", "--calibration",
                              videos[2], "--frame-stride", "1", "--batch-size", "4", "-o", output, "--report", report)
    assert code == 0, err
    assert output.exists() and "int8 Q/DQ" in out and "fidelity on ONNX Runtime CPU over 30 frames" in out
    assert "SROCC" in out and "speed:" in out and "UNTRAINED" in err
    assert json.loads(report.read_text())["fidelity"]["frames"] == 30


def test_quantize_fp8_says_whether_the_cpu_runs_it(monkeypatch, capsys, nr_export, videos, tmp_path, ort_cpu_runs):
    output = tmp_path / "nr.fp8.onnx"
    code, out, err = run_main(monkeypatch, capsys, "quantize", nr_export.path, "--mode", "fp8", "--calibration",
                              videos[2], "--sample-frames", "16", "-o", output)
    assert code == 0 and output.exists(), err
    pixels = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    if ort_cpu_runs(str(output), {"pixels": pixels}):  # ONNX Runtime 1.32 and later
        assert "fidelity on ONNX Runtime CPU over 16 frames" in out and "cannot run" not in out + err
    else:
        assert "not measured, ONNX Runtime CPU cannot run" in out and "cannot run fp8 graphs" in err


def test_quantize_with_too_few_calibration_frames(monkeypatch, capsys, nr_export, videos, tmp_path):
    output = tmp_path / "nr.q.onnx"
    code, _, err = run_main(monkeypatch, capsys, "quantize", nr_export.path, "--calibration", videos[2], "-o", output)
    assert code == 2 and err.count("\n") == 1 and not output.exists()
    assert "calibration set too small: 3 frames selected, need at least 16" in err
