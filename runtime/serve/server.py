"""``vqa-rt serve``: engines kept loaded, jobs taken over a Unix domain socket.

The wire protocol is documented in ``docs/serve-protocol.md``: a JSON job header line,
a JSON acknowledgement, frame messages (``FRAM`` + little-endian uint32 length + the
frame's planes for each video the job reads), ``DONE``; the server answers with one JSON
line per frame as soon as it is scored and a final ``done`` (or ``error``) line. Jobs
run as :func:`~vqa_rt.runtime.pipeline.job.run_job` does, on runners that stay warm across jobs
(:func:`~vqa_rt.runtime.engines.runners.warm_runners`); each connection has a thread, and
whatever one client sends ends at most its own job.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import stat
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np

from vqa_rt.errors import InputError, VqaRtError
from vqa_rt.runtime.checks import finite_number, thread_count
from vqa_rt.runtime.engines.runners import preload, warm_runners
from vqa_rt.runtime.frames.options import EngineSampling, FrameOptions
from vqa_rt.runtime.frames.sources import MIN_FPS, VideoInput, check_fps
from vqa_rt.runtime.frames.video import BIT_DEPTHS, PIX_FMTS, VideoFormat, VideoReader
from vqa_rt.runtime.pipeline.job import JobEngines, JobOptions, check_job, run_job
from vqa_rt.runtime.qpmaps.conversion import QPConversion
from vqa_rt.runtime.serve.protocol import DONE_MAGIC, FRAME_MAGIC, HEADER_LIMIT, MESSAGE, PROTOCOL_VERSION

MAX_SIDE = 8192
MAX_DRAIN_TIMEOUT = 86400.0  # seconds running jobs may get at shutdown: a day
ROLE_NAMES = {"reference": "source", "distorted": "distorted"}
_FRAME_OPTIONS = {"frame_skip", "max_frames", "batch_size", "matrix", "range"}
_ENGINE_SAMPLING = {"fr_stride": ("fr", "frame_stride"), "nr_fps": ("nr", "sample_fps"),
                    "nr_stride": ("nr", "frame_stride")}
_MAP_OPTIONS = {"base_qp", "max_delta", "grid", "codec"}
_JOB_KEYS = {"engines", "width", "height", "pix_fmt", "fps", "qp_maps", "protocol",
             *_FRAME_OPTIONS, *_ENGINE_SAMPLING, *_MAP_OPTIONS}


@dataclass(frozen=True)
class Job:
    """A parsed job header."""

    engines: JobEngines
    options: JobOptions
    fmt: VideoFormat
    qp_maps: bool

    @property
    def roles(self) -> tuple[str, ...]:
        return self.engines.roles()


def parse_job(header: dict[str, Any], available: JobEngines) -> Job:
    """Check a job header against the server's engines; raises :class:`InputError` naming what is wrong."""
    if not isinstance(header, dict):
        raise InputError("the job header must be a JSON object")
    unknown = sorted(set(header) - _JOB_KEYS)
    if unknown:
        raise InputError(f"unknown job field(s): {', '.join(unknown)}")
    if header.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise InputError(f"protocol {header['protocol']!r} is not served (this server speaks {PROTOCOL_VERSION})")
    names = header.get("engines")
    served = {"fr": available.fr, "nr": available.nr, "qpmap": available.qpmap or available.maps or None}
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError('"engines" must be a non-empty list of names (fr, nr, qpmap)')
    missing = [n for n in names if not served.get(n)]
    if missing:
        offered = ", ".join(n for n, e in served.items() if e) or "none"
        raise InputError(f"engine(s) not served here: {', '.join(missing)} (this server has: {offered})")
    width, height = header.get("width"), header.get("height")
    for what, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 2 <= value <= MAX_SIDE or value % 2:
            raise InputError(f'"{what}" must be an even integer in 2..{MAX_SIDE}, got {value!r}')
    pix_fmt = header.get("pix_fmt", "yuv420p")
    if pix_fmt not in PIX_FMTS:
        raise InputError(f'"pix_fmt" must be one of {", ".join(PIX_FMTS)}, got {pix_fmt!r}')
    fps = header.get("fps")
    if fps is not None:
        try:
            check_fps('"fps"', fps)
        except InputError:
            raise InputError(f'"fps" must be a positive finite number (at least {MIN_FPS:g}), got {fps!r}') from None
    if not isinstance(header.get("qp_maps", False), bool):
        raise InputError(f'"qp_maps" must be true or false, got {header["qp_maps"]!r}')
    engines = replace(available, fr=available.fr if "fr" in names else None,
                      nr=available.nr if "nr" in names else None,
                      qpmap=available.qpmap if "qpmap" in names else None,
                      qp_method=available.qp_method if "qpmap" in names else "model")
    frame_options = {("color_range" if k == "range" else k): header[k] for k in _FRAME_OPTIONS if k in header}
    sampling: dict[str, dict[str, Any]] = {"fr": {}, "nr": {}}
    for key, (engine, field) in _ENGINE_SAMPLING.items():
        if key in header:
            sampling[engine][field] = header[key]
    try:
        options = JobOptions(frames=FrameOptions(**frame_options), fr=EngineSampling(**sampling["fr"]),
                             nr=EngineSampling(**sampling["nr"]),
                             conversion=QPConversion(**{k: header[k] for k in _MAP_OPTIONS if k in header}),
                             map_format="json")
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad job option: {exc}") from None
    rate = None if fps is None else Fraction(fps).limit_denominator(1001)
    fmt = VideoFormat(width, height, BIT_DEPTHS[pix_fmt], rate, None, pix_fmt)
    return Job(engines, options, fmt, header.get("qp_maps", False))


def read_job_header(line: bytes, available: JobEngines) -> Job:
    """The job of a header line as read (at most :data:`HEADER_LIMIT` bytes), checked by :func:`parse_job`."""
    if not line.endswith(b"\n"):
        raise InputError("the job header must be one JSON line under 64 KiB ending in a newline")
    try:
        header = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a number of more digits than int() takes
        raise InputError("the job header is not valid JSON") from None
    except RecursionError:
        raise InputError("the job header nests JSON arrays or objects too deeply") from None
    return parse_job(header, available)


class _Messages:
    """The frame messages of one connection, each split into the frame of each video the job reads."""

    def __init__(self, stream: BinaryIO, roles: tuple[str, ...], fmt: VideoFormat):
        self.stream, self.roles, self.fmt = stream, roles, fmt
        self.waiting: dict[str, np.ndarray | None] = {}

    def _exactly(self, size: int, what: str) -> bytes:
        data = self.stream.read(size)
        if len(data) < size:
            raise InputError(f"the client disconnected {what} ({len(data)} of {size} bytes came)")
        return data

    def read(self, role: str, index: int) -> np.ndarray | None:
        if role != self.roles[0]:
            return self.waiting.pop(role)
        magic, size = MESSAGE.unpack(self._exactly(MESSAGE.size, f"before frame {index} (no {DONE_MAGIC.decode()})"))
        if magic == DONE_MAGIC:
            self.waiting = dict.fromkeys(self.roles[1:])
            return None
        if magic != FRAME_MAGIC:
            raise InputError(f"frame {index}: expected a FRAM or DONE message, got {magic!r}")
        expected = self.fmt.frame_bytes * len(self.roles)
        if size != expected:
            raise InputError(f"frame {index}: message of {size} bytes, the job's frames take {expected} "
                             f"({' + '.join(ROLE_NAMES[r] for r in self.roles)}, {self.fmt.width}x{self.fmt.height} "
                             f"{self.fmt.pix_fmt})")
        payload = np.frombuffer(self._exactly(size, f"in the middle of frame {index}"), np.uint8)
        parts = np.split(payload, len(self.roles))
        self.waiting = dict(zip(self.roles[1:], parts[1:]))
        return parts[0]


class _SocketVideo(VideoReader):
    """One video of a job, read from the connection's frame messages."""

    def __init__(self, messages: _Messages, role: str, name: str):
        super().__init__(None, name, messages.fmt, None)
        self.messages, self.role = messages, role

    def _read_frame(self, index: int) -> np.ndarray | None:
        return self.messages.read(self.role, index)

    def close(self) -> None:
        pass


class _Handler(socketserver.StreamRequestHandler):
    server: VqaServer

    def _send(self, line: dict[str, Any]) -> None:
        self.wfile.write((json.dumps(line) + "\n").encode())
        self.wfile.flush()

    def handle(self) -> None:
        self.server.track(self.request, True)
        try:
            self._job()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left: its job is over, the server is not
        except Exception as exc:  # noqa: BLE001 - one bad job must not end the server
            self.server.log(f"job failed: {type(exc).__name__}: {exc}")
            try:
                self._send({"error": f"internal error: {type(exc).__name__}: {exc}"})
            except OSError:
                pass
        finally:
            self.server.track(self.request, False)

    def _job(self) -> None:
        line = self.rfile.readline(HEADER_LIMIT)
        try:
            job = read_job_header(line, self.server.engines)
            name = f"job {self.server.next_job()}"
            inputs = {role: VideoInput(f"<{name} {ROLE_NAMES[role]}>") for role in job.roles}
            check_job(job.engines, job.options, inputs)
        except VqaRtError as exc:
            self._send({"error": str(exc)})
            return
        messages = _Messages(self.rfile, job.roles, job.fmt)
        self._send({"ok": True, "protocol": PROTOCOL_VERSION, "job": name, "videos": [ROLE_NAMES[r] for r in job.roles],
                    "frame_message_bytes": job.fmt.frame_bytes * len(job.roles)})
        readers = {role: _SocketVideo(messages, role, inputs[role].path) for role in job.roles}
        try:
            summary = run_job(job.engines, inputs, job.options, on_frame=self._send, readers=readers,
                              device=self.server.device, threads=self.server.threads, map_lines=job.qp_maps)
        except VqaRtError as exc:
            ended = "the server shut down before the job was done: " if self.server.ending else ""
            self._send({"error": f"{ended}{exc}"})
            return
        self._send({"done": True, "seconds": summary["seconds"],
                    "engines": {name: {"frames": entry["frames"], "pooled": entry["pooled"]}
                                for name, entry in summary["engines"].items()}})


class VqaServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The Unix-socket server; engines load once at start (see :func:`serve`)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, engines: JobEngines, device: str, threads: int, log=print):
        self.engines, self.device, self.threads, self.log = engines, device, threads, log
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._jobs = 0
        self.ending = False  # set when running jobs are being ended at shutdown
        super().__init__(path, _Handler)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)  # this user only

    def next_job(self) -> int:
        with self._lock:
            self._jobs += 1
            return self._jobs

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for running jobs; then end the rest (their clients get an error line).
        Returns how many were ended."""
        deadline = time.monotonic() + timeout
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            left = list(self._connections)
        self.ending = bool(left)
        for connection in left:
            try:
                connection.shutdown(socket.SHUT_RD)  # the job reads end-of-stream and fails with an error line
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(left)


def check_socket_path(path: str) -> None:
    """Refuse to replace anything but a stale socket."""
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise InputError(f"{path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
        except OSError:
            os.remove(path)  # nobody listens: a leftover from a server that died
        else:
            raise InputError(f"{path}: a server is already listening there")
        finally:
            probe.close()
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise InputError(f"{path}: its directory does not exist")


def serve(path: str, engines: JobEngines, *, device: str = "cpu", threads: int = 0, stop: threading.Event,
          drain_timeout: float = 30.0, ready=None, log=print) -> None:
    """Serve jobs on the Unix socket ``path`` until ``stop`` is set, then finish running jobs (up to
    ``drain_timeout`` s, 0..:data:`MAX_DRAIN_TIMEOUT`, then fail the rest) and remove the socket. ``ready()`` is
    called once listening."""
    finite_number(drain_timeout, "--drain-timeout (seconds)", at_least=0, at_most=MAX_DRAIN_TIMEOUT)
    thread_count(threads)
    inputs = {role: VideoInput("<check>") for role in engines.roles()}
    resolved = check_job(engines, JobOptions(map_format="json"), inputs)
    check_socket_path(path)
    with warm_runners():
        preload(list(resolved.values()), device, threads)
        server = VqaServer(path, engines, device, threads, log)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="serve",
                                  daemon=True)
        thread.start()
        try:
            if ready is not None:
                ready()
            while not stop.wait(0.2):
                pass
        finally:
            server.shutdown()
            ended = server.drain(drain_timeout)
            server.server_close()
            if os.path.exists(path):
                os.remove(path)
            if ended:
                log(f"ended {ended} unfinished job(s) at shutdown")
