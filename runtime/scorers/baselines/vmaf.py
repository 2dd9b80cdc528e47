"""VMAF through an ffmpeg built with libvmaf, fed by the scoring pipeline through pipes.

The selected frames are streamed as raw YUV to one ffmpeg process (distorted on one
pipe, reference on another), so VMAF follows the same readers, frame selection and
analysis size as every other engine and needs no intermediate files. libvmaf writes
its per-frame JSON log when the stream ends, so this scorer hands back every frame's
``vmaf`` at :meth:`finish`. Its motion feature compares each frame with the previous
*selected* frame: with ``frame_stride > 1`` that is not the previous source frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any, BinaryIO

import numpy as np

from vqa_rt.errors import ExternalToolError
from vqa_rt.runtime.engines.record import Engine
from vqa_rt.runtime.frames.ffmpeg import ENV_VAR, ffmpeg_with_filter
from vqa_rt.runtime.frames.options import FrameOptions
from vqa_rt.runtime.frames.selection import FramePair
from vqa_rt.runtime.frames.video import Frame, VideoFormat
from vqa_rt.runtime.scorers.base import FrameScorer
from vqa_rt.runtime.scorers.baselines.geometry import measured_geometry, resized

MODEL = "vmaf_v0.6.1"
_NEEDS = (f"VMAF needs an ffmpeg built with --enable-libvmaf; the imageio-ffmpeg wheel's has it "
          f"(pip install 'vqa-rt[eval]'), or set {ENV_VAR} to one")
_LOG, _STDERR = "vmaf.json", "ffmpeg.log"


def find_vmaf_ffmpeg() -> str:
    """The ffmpeg to run, checked to have the libvmaf filter."""
    return ffmpeg_with_filter("libvmaf", _NEEDS)


class VmafScorer(FrameScorer):
    """libvmaf's ``vmaf`` (model ``vmaf_v0.6.1``) per frame, from one ffmpeg process per video pair; on the CPU
    whatever the device, with ``threads`` libvmaf threads (0: one per core)."""

    def __init__(self, engine: Engine, options: FrameOptions, formats: tuple[VideoFormat, VideoFormat],
                 device: str = "cpu", threads: int = 0):
        self.ffmpeg = find_vmaf_ffmpeg()
        width, height, self.bit_depth = measured_geometry("vmaf", options.analysis_size, formats, min_size=2)
        self.size, self.chroma_size = (width, height), (width // 2, height // 2)
        self.threads = threads or os.cpu_count() or 1
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._process: subprocess.Popen | None = None
        self._pipes: list[BinaryIO] = []
        self._sent = 0

    def describe(self) -> dict[str, Any]:
        return {
            "name": "vmaf",
            "kind": "baseline",
            "label": "VMAF",
            "metric": "vmaf",
            "definition": f"libvmaf {MODEL} through ffmpeg's libvmaf filter",
            "backend": "ffmpeg-libvmaf",
            "ffmpeg": self.ffmpeg,
            "untrained": False,
            "score_scale": {"name": MODEL, "min": 0.0, "max": 100.0, "higher_is_better": True},
        }

    def _command(self, main_fd: int, reference_fd: int) -> list[str]:
        pix_fmt = "yuv420p" if self.bit_depth == 8 else "yuv420p10le"
        raw = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{self.size[0]}x{self.size[1]}"]
        vmaf = f"libvmaf=model=version={MODEL}:log_fmt=json:log_path={_LOG}:n_threads={self.threads}"
        return [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
                *raw, "-i", f"pipe:{main_fd}", *raw, "-i", f"pipe:{reference_fd}",
                "-lavfi", f"[0:v][1:v]{vmaf}", "-f", "null", "-"]

    def __enter__(self) -> VmafScorer:
        self._workdir = tempfile.TemporaryDirectory(prefix="vqa-rt-vmaf-")
        pipes = [os.pipe(), os.pipe()]  # (read, write) for the distorted (libvmaf's main input), the reference
        try:
            with open(os.path.join(self._workdir.name, _STDERR), "wb") as stderr:
                self._process = subprocess.Popen(
                    self._command(pipes[0][0], pipes[1][0]), cwd=self._workdir.name, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=stderr, pass_fds=[read for read, _ in pipes])
        except OSError as exc:
            for _read, write in pipes:
                os.close(write)
            self._workdir.cleanup()
            raise ExternalToolError(f"vmaf: cannot start {self.ffmpeg}: {exc.strerror or exc}") from None
        finally:
            for read, _ in pipes:
                os.close(read)
        self._pipes = [os.fdopen(write, "wb") for _, write in pipes]
        return self

    def _raw(self, frame: Frame) -> bytes:
        planes = (resized(frame.y, self.size), resized(frame.u, self.chroma_size), resized(frame.v, self.chroma_size))
        dtype = np.uint8 if self.bit_depth == 8 else np.dtype("<u2")
        return b"".join(plane.astype(dtype, copy=False).tobytes() for plane in planes)

    def prepare(self, pair: FramePair) -> tuple[bytes, bytes]:
        return self._raw(pair.dist), self._raw(pair.ref)

    def score_batch(self, prepared: list[tuple[bytes, bytes]]) -> list[dict[str, float]]:
        try:
            for frames in prepared:
                for pipe, data in zip(self._pipes, frames):
                    pipe.write(data)
                    pipe.flush()
                self._sent += 1
        except BrokenPipeError:
            self._process.wait()
            raise self._failure() from None
        return []

    def finish(self) -> list[dict[str, float]]:
        try:
            for pipe in self._pipes:
                pipe.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            raise self._failure()
        try:
            with open(os.path.join(self._workdir.name, _LOG), encoding="utf-8") as handle:
                frames = json.load(handle)["frames"]
            values = [{"vmaf": float(frame["metrics"]["vmaf"])} for frame in frames]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExternalToolError(f"vmaf: unreadable libvmaf log from {self.ffmpeg} ({exc})") from None
        if len(values) != self._sent:
            raise ExternalToolError(f"vmaf: libvmaf scored {len(values)} frames but {self._sent} were sent")
        return values

    def _failure(self) -> ExternalToolError:
        with open(os.path.join(self._workdir.name, _STDERR), encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        detail = lines[-1] if lines else "no message"
        return ExternalToolError(f"vmaf: {self.ffmpeg} exited with status {self._process.returncode}: {detail}")

    def __exit__(self, *exc_info) -> None:
        for pipe in self._pipes:
            try:
                pipe.close()
            except OSError:
                pass  # ffmpeg already gone: nothing left to flush to
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
