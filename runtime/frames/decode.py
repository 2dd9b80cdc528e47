"""Containers and compressed elementary streams (MP4, MKV, IVF, raw HEVC, …) decoded through ffmpeg.

A file is decoded when its first bytes are an MP4/MOV ``ftyp`` box, a Matroska/WebM EBML
header or an IVF ``DKIF`` header, or else when its extension names such a format. A probe
(``-c copy`` into the null muxer, reading but not decoding the whole file) finds the first
video stream's pixel format and its packet count; then ffmpeg decodes that stream to Y4M
on a pipe with passthrough timing (no frame is duplicated or dropped to fit a rate), read
by the Y4M reader. The reader's ``frame_count`` is the **packet count**, one packet per
frame. Where the decoder yields fewer frames than that (leading pictures of an open GOP,
a stream cut before its first keyframe, frames an MP4 edit list hides), the end of its
output raises :class:`InputError` rather than letting the video silently lose frames.
Any error ffmpeg logs, reading the container or decoding (corrupt data it would conceal
included), raises it too. Needs ffmpeg ≥ 5.1 (``-fps_mode``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.frames.ffmpeg import find_ffmpeg
from vqa_rt.runtime.frames.video import VideoFormat, VideoReader
from vqa_rt.runtime.frames.y4m import Y4M_MAGIC, Y4mReader, read_y4m_header

_EXTENSIONS = frozenset("mp4 mov mkv webm hevc h265 265 h264 264 266 vvc ivf avi ts".split())
_EBML, _IVF = b"\x1a\x45\xdf\xa3", b"DKIF"
# Pixel formats ffmpeg converts losslessly (a reordering of samples) to the two vqa-rt reads.
_DECODE_AS = {"yuv420p": "yuv420p", "yuvj420p": "yuv420p", "nv12": "yuv420p", "nv21": "yuv420p",
              "yuv420p10le": "yuv420p10le", "yuv420p10be": "yuv420p10le",
              "p010le": "yuv420p10le", "p010be": "yuv420p10le"}
_LOG_LINE = re.compile(r"\[(info|warning|error|fatal|panic)\] (.*)")
_VIDEO_STREAM = re.compile(r"Stream #0:\d+\S*: Video: (.*)")
_PROGRESS = re.compile(r"frame=\s*(\d+)")
_TOP_LEVEL_COMMA = re.compile(r",\s*(?![^()]*\))")
_CONTEXT = re.compile(r"^(\[[^\]]*\] )+")  # "[ffv1 @ 0x…] " before a log message
_EXIT_WAIT_S = 5  # how long ffmpeg may take to exit once its output has ended


def is_compressed(path: str, head: bytes) -> bool:
    """Whether the file at ``path``, starting with ``head`` (≥ 8 bytes when it has them), is
    a container or compressed stream: by its magic bytes, else by its extension."""
    return (head[4:8] == b"ftyp" or head.startswith((_EBML, _IVF))
            or os.path.splitext(path)[1][1:].lower() in _EXTENSIONS)


def open_decoded(path: str, width: int | None = None, height: int | None = None,
                 pix_fmt: str | None = None, fps: Fraction | None = None) -> VideoReader:
    """A reader of the first video stream of ``path`` as ffmpeg decodes it; the values
    given must agree with the stream's."""
    executable = find_ffmpeg()
    decode_as, count = _probe(executable, path)
    decoder = _Decoder(executable, path, decode_as)
    try:
        if decoder.stdout.read(len(Y4M_MAGIC)) != Y4M_MAGIC:
            decoder.check_exit(path)
            _check_count(path, 0, count)
        fmt, _ = read_y4m_header(decoder.stdout, path, width, height, pix_fmt, fps,
                                  source="the video stream")
    except BaseException:
        decoder.stop()
        raise
    return _DecodedReader(decoder, path, fmt, count)


def _probe(executable: str, path: str) -> tuple[str, int]:
    """The pixel format to decode the first video stream of ``path`` to, and its packet count."""
    command = [executable, "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i", path,
               "-map", "0:v:0", "-copyinkf", "-c", "copy", "-f", "null", "-"]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as exc:
        raise BackendUnavailableError(f"{executable}: cannot run ffmpeg: {exc.strerror}") from None
    log = [m.groups() for line in done.stderr.decode(errors="replace").splitlines()
           if (m := _LOG_LINE.search(line))]
    stream = _video_stream(log)
    errors = [message for level, message in log if level in ("error", "fatal", "panic")]
    if stream is None and any(message.startswith("Input #0") for _, message in log):
        raise InputError(f"{path}: has no video stream")
    if done.returncode or errors or stream is None:
        reason = errors[0] if errors else f"ffmpeg exited with status {done.returncode}"
        raise InputError(f"{path}: ffmpeg cannot read it: {reason}")
    counts = [int(m.group(1)) for _, message in log if (m := _PROGRESS.match(message))]
    if not counts or counts[-1] == 0:
        raise InputError(f"{path}: has no frames")
    return _decode_as(path, stream), counts[-1]


def _video_stream(log: list[tuple[str, str]]) -> str | None:
    """The description of the input's first video stream in an ffmpeg log, after ``Video:``."""
    for _, message in log:
        if message.startswith(("Stream mapping:", "Output #0")):
            break
        if m := _VIDEO_STREAM.search(message):
            return m.group(1)
    return None


def _decode_as(path: str, stream: str) -> str:
    """``yuv420p`` or ``yuv420p10le`` for a stream described as ``codec (…), pix_fmt(…), WxH, …``."""
    fields = _TOP_LEVEL_COMMA.split(stream)
    source = fields[1].split("(")[0].strip() if len(fields) > 1 else "unknown"
    if source not in _DECODE_AS:
        raise InputError(f"{path}: unsupported pixel format {source} "
                         "(supported: 4:2:0 at 8 or 10 bits, e.g. yuv420p, yuv420p10le)")
    return _DECODE_AS[source]


class _Decoder:
    """ffmpeg decoding a file's first video stream to Y4M on ``stdout``; its stderr goes to
    a temporary file, which cannot fill up and block it."""

    def __init__(self, executable: str, path: str, pix_fmt: str):
        self._errors = tempfile.TemporaryFile()
        command = [executable, "-nostdin", "-v", "error", "-xerror", "-i", path, "-map", "0:v:0",
                   "-fps_mode", "passthrough", "-pix_fmt", pix_fmt, "-strict", "-1",
                   "-f", "yuv4mpegpipe", "-"]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=self._errors)
        except OSError as exc:
            self._errors.close()
            raise BackendUnavailableError(f"{executable}: cannot run ffmpeg: {exc.strerror}") from None
        self.stdout = self._process.stdout

    def check_log(self, name: str) -> None:
        """:class:`InputError` with ffmpeg's first message if it logged one (at ``-v error``
        it logs only errors: corrupt data it concealed, or why it stopped)."""
        logged = os.pread(self._errors.fileno(), 4096, 0)  # leaves ffmpeg's file offset alone
        if logged:
            first = logged.decode(errors="replace").splitlines()[0]
            raise InputError(f"{name}: ffmpeg failed decoding it: {_CONTEXT.sub('', first)}")

    def check_exit(self, name: str) -> None:
        """Once its output has ended: :class:`InputError` if ffmpeg failed or logged an error."""
        try:
            code = self._process.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return
        self.check_log(name)
        if code:
            raise InputError(f"{name}: ffmpeg failed decoding it (exit status {code})")

    def stop(self) -> None:
        """Kill ffmpeg if it is still running, reap it and close its output."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self.stdout.close()
        self._errors.close()


class _DecodedReader(Y4mReader):
    """Y4M frames from a :class:`_Decoder`, checked against the probed frame count at the end."""

    def __init__(self, decoder: _Decoder, name: str, fmt: VideoFormat, frame_count: int):
        super().__init__(decoder.stdout, name, fmt, frame_count)
        self._decoder = decoder

    def _read_frame(self, index: int) -> np.ndarray | None:
        try:
            buf = super()._read_frame(index)
        except InputError:
            self._decoder.check_exit(self.name)  # ffmpeg's own error, where it failed
            raise
        if buf is None:
            self._decoder.check_exit(self.name)
            _check_count(self.name, index, self.frame_count)
        else:
            self._decoder.check_log(self.name)
        return buf

    def close(self) -> None:
        """Stop ffmpeg (killed if the frames were not all read) and reap it."""
        self._decoder.stop()


def _check_count(name: str, decoded: int, count: int) -> None:
    """:class:`InputError` when ffmpeg's output ended after ``decoded`` of ``count`` frames."""
    if decoded < count:
        raise InputError(
            f"{name}: ffmpeg decoded {decoded} of its {count} frames (video packets): the "
            "decoder dropped some, e.g. leading pictures of an open GOP, frames before the "
            "first keyframe, or frames an MP4 edit list hides")
