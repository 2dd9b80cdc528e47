"""``vqa-rt run``: the CLI over a source/reconstruction pair, and streaming with a live encoder."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.score import score

W, H, FRAMES, RATE = 128, 96, 80, 10


def test_run_writes_every_engine_and_prints_json_lines(tmp_path, cli, clip, fr_export):
    out = tmp_path / "out"
    done = cli("run", "--source", clip.ref, "--distorted", clip.dist, "-w", clip.width, "-h", clip.height,
               "--fr", fr_export.path, "--qp-method", "activity", "--qp-format", "x265", "--output-dir", out,
               "--jsonl", "-")
    assert done.returncode == 0, done.stderr.decode()
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [line["frameNum"] for line in lines] == list(range(clip.frames))
    fr = json.loads((out / "fr.json").read_text())
    assert [line["fr"] for line in lines] == [f["metrics"] for f in fr["frames"]]
    assert os.path.getsize(out / "qpmap.bin") == clip.frames * (96 // 16) * (128 // 16) * 4  # float32 per block
    assert b"[untrained]" in done.stderr or b"UNTRAINED" in done.stderr


def test_bad_run_is_one_line_and_writes_nothing(tmp_path, cli, clip, fr_export):
    out = tmp_path / "out"
    done = cli("run", "--source", clip.ref, "-w", clip.width, "-h", clip.height, "--fr", fr_export.path,
               "--output-dir", out)
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1
    assert "need the distorted video" in done.stderr.decode() and not out.exists()


def test_scores_stream_out_while_a_real_encoder_writes_the_reconstruction(tmp_path, ffmpeg, fr_export):
    """ffmpeg paces the source at 10 frames/s into libx265, a second ffmpeg decodes the bitstream into a
    FIFO as Y4M; vqa-rt reads the FIFO and its per-frame JSON lines reach this process while the encoder
    is still running. The streamed scores equal scoring the saved bitstream's decode afterwards."""
    ref, unused = str(tmp_path / "ref.yuv"), str(tmp_path / "unused.yuv")
    make_test_clip(ref, unused, W, H, FRAMES, seed=5)
    fifo, bitstream = str(tmp_path / "recon.y4m"), str(tmp_path / "out.hevc")
    os.mkfifo(fifo)
    quoted = shlex.quote
    encoder = subprocess.Popen(
        f"{quoted(ffmpeg)} -v error -re -f rawvideo -pix_fmt yuv420p -s {W}x{H} -r {RATE} -i {quoted(ref)} "
        f"-c:v libx265 -preset ultrafast -tune zerolatency -x265-params log-level=error -f hevc - "
        f"| tee {quoted(bitstream)} | {quoted(ffmpeg)} -v error -f hevc -i - -f yuv4mpegpipe -y {quoted(fifo)}",
        shell=True)
    scorer = subprocess.Popen(
        [sys.executable, "-m", "vqa_rt.cli", "run", "--source", ref, "--distorted", fifo, "-w", str(W), "-h", str(H),
         "--fr", fr_export.path, "--jsonl", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = json.loads(scorer.stdout.readline())
    encoding_when_first_arrived = encoder.poll() is None
    lines = [first] + [json.loads(line) for line in scorer.stdout]
    assert scorer.wait(timeout=120) == 0, scorer.stderr.read().decode()
    assert encoder.wait(timeout=60) == 0
    assert encoding_when_first_arrived, "the first score arrived only after the encoder had finished"
    assert [line["frameNum"] for line in lines] == list(range(FRAMES))

    decoded = str(tmp_path / "decoded.y4m")
    subprocess.run([ffmpeg, "-v", "error", "-i", bitstream, "-f", "yuv4mpegpipe", decoded], check=True)
    offline = score(fr_export.path, VideoInput(ref, W, H), VideoInput(decoded))
    assert [line["fr"] for line in lines] == [frame["metrics"] for frame in offline["frames"]]


def test_json_lines_into_a_file(tmp_path, cli, clip):
    target = tmp_path / "frames.jsonl"
    done = cli("run", "--source", clip.ref, "-w", clip.width, "-h", clip.height, "--qp-method", "activity",
               "--jsonl", target)
    assert done.returncode == 0, done.stderr.decode()
    assert len(target.read_text().splitlines()) == clip.frames
