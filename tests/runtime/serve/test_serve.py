"""``vqa-rt serve``: concurrent jobs on warm engines over a Unix socket, bad clients, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.pipeline.job import JobEngines, run_job
from vqa_rt.runtime.serve.client import ServeError, submit
from vqa_rt.runtime.serve.server import DONE_MAGIC, FRAME_MAGIC, MESSAGE, serve


def frame_payloads(clip, roles=("ref", "dist")) -> list[bytes]:
    """Each frame message's payload: the source frame's bytes then the distorted frame's."""
    size = clip.width * clip.height * 3 // 2
    data = {role: open(getattr(clip, role), "rb").read() for role in roles}
    return [b"".join(data[role][i * size:(i + 1) * size] for role in roles) for i in range(clip.frames)]


@pytest.fixture
def socket_dir():
    folder = tempfile.mkdtemp(prefix="vqa-serve-")  # short: socket paths are limited to ~100 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start_server(path: str, engines: JobEngines, drain_timeout: float) -> tuple[threading.Event, threading.Thread]:
    """``serve`` in a thread, listening; returns its stop event and the thread."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(path, engines), kwargs={
        "stop": stop, "ready": ready.set, "log": lambda _: None, "drain_timeout": drain_timeout})
    thread.start()
    assert ready.wait(60)
    return stop, thread


@pytest.fixture
def server(socket_dir, fr_export, nr_export):
    path = os.path.join(socket_dir, "s.sock")
    stop, thread = start_server(path, JobEngines(fr=fr_export.path, nr=nr_export.path, qp_method="activity"), 10)
    yield path, stop
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and not os.path.exists(path)


def job(clip, engines=("fr", "nr", "qpmap"), **extra):
    return {"engines": list(engines), "width": clip.width, "height": clip.height, "fps": 2, **extra}


def test_concurrent_clients_get_what_a_local_run_gives(server, clip, fr_export, nr_export):
    path, _ = server
    local = run_job(JobEngines(fr=fr_export.path, nr=nr_export.path, qp_method="activity"),
                    {"reference": VideoInput(clip.ref, clip.width, clip.height, fps=2),
                     "distorted": VideoInput(clip.dist, clip.width, clip.height, fps=2)})
    payloads = frame_payloads(clip)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: submit(path, job(clip), payloads), range(4)))
    for lines in answers:
        frames, done = lines[:-1], lines[-1]
        assert [f["frameNum"] for f in frames] == list(range(clip.frames))
        assert [f["fr"] for f in frames] == [f["metrics"] for f in local["results"]["fr"]["frames"]]
        assert [f["nr"] for f in frames if "nr"in f] == [f["metrics"] for f in local["results"]["nr"]["frames"]]
        assert [f["qpmap"]["mean_delta_qp"] for f in frames] == [
            f["mean_delta_qp"] for f in local["results"]["qpmap"]["frames"]]
        assert done["done"] and done["engines"]["nr"]["frames"] == 3


def test_one_video_jobs_and_whole_maps(server, clip):
    path, _ = server
    lines = submit(path, job(clip, ["qpmap"], qp_maps=True), frame_payloads(clip, ("ref",)))
    rows, cols = -(-clip.height // 16), -(-clip.width // 16)
    assert all(len(f["qpmap"]["delta_qp"]) == rows and len(f["qpmap"]["delta_qp"][0]) == cols for f in lines[:-1])
    lines = submit(path, job(clip, ["nr"]), frame_payloads(clip, ("dist",)))
    assert [f["frameNum"] for f in lines[:-1]] == [0, 2, 4]


@pytest.mark.parametrize("header,message", [
    (b"not json\n", "not valid JSON"),
    (b'{"engines": ["fr"], "width": 128}\n', '"height" must be'),
    (json.dumps({"engines": ["vmaf"], "width": 8, "height": 8}).encode() + b"\n", "not served here"),
    (json.dumps({"engines": ["fr"], "width": 8, "height": 8, "colour": 1}).encode() + b"\n", "unknown job field"),
])
def test_bad_headers_get_an_error_and_the_server_keeps_serving(server, clip, header, message):
    path, _ = server
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(path)
        connection.sendall(header)
        reply = json.loads(connection.makefile("rb").readline())
    assert message in reply["error"]
    assert submit(path, job(clip, ["fr"]), frame_payloads(clip))[-1]["done"]


BAD_FIELDS = [  # (job field, what the error line says)
    ({"batch_size": "x"}, "batch size must be a whole number, got 'x'"),
    ({"batch_size": 1.5}, "batch size must be a whole number, got 1.5"),
    ({"batch_size": True}, "batch size must be a whole number, got True"),
    ({"matrix": "bogus"}, "unknown colour matrix 'bogus'"),
    ({"matrix": ["bt709"]}, "unknown colour matrix ['bt709']"),
    ({"range": {}}, "unknown colour range {}"),
    ({"frame_skip": "1"}, "frame skip must be a whole number"),
    ({"max_frames": 10**30}, "max frames must be at most"),
    ({"fr_stride": 1.5}, "frame stride must be a whole number"),
    ({"nr_fps": "x"}, "sampling rate (frames per second) must be a finite number"),
    ({"fps": True}, '"fps" must be a positive finite number (at least 0.001), got True'),
    ({"fps": 1e-9}, '"fps" must be a positive finite number (at least 0.001), got 1e-09'),
    ({"qp_maps": "yes"}, '"qp_maps" must be true or false'),
    ({"base_qp": "x"}, "base QP must be a whole number"),
    ({"codec": ["hevc"]}, "unknown codec ['hevc']"),

]


def test_job_fields_of_the_wrong_type_or_range_get_a_typed_error(server, clip):
    path, _ = server
    for field, message in BAD_FIELDS:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(path)
            connection.sendall(json.dumps(job(clip, ["fr"], **field)).encode() + b"\n")
            reply = json.loads(connection.makefile("rb").readline())
        assert message in reply["error"] and "internal error" not in reply["error"], (field, reply)
    assert submit(path, job(clip, ["fr"]), frame_payloads(clip))[-1]["done"]


def raw_job(path, header: dict, body: bytes) -> list[dict]:
    """Send a header and raw bytes, then stop sending; the server's replies until it closes."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(path)
        connection.sendall(json.dumps(header).encode() + b"\n" + body)
        connection.shutdown(socket.SHUT_WR)
        return [json.loads(line) for line in connection.makefile("rb")]


def test_disconnect_mid_frame_and_garbage_frames_end_only_that_job(server, clip):
    path, _ = server
    payloads = frame_payloads(clip)
    half = MESSAGE.pack(FRAME_MAGIC, len(payloads[0])) + payloads[0] + MESSAGE.pack(FRAME_MAGIC, len(payloads[1]))
    replies = raw_job(path, job(clip, ["fr"]), half + payloads[1][:1000])
    assert replies[0]["ok"] and "in the middle of frame 1" in replies[-1]["error"]
    assert replies[1]["frameNum"] == 0  # what was scored before stays answered

    replies = raw_job(path, job(clip, ["fr"]), b"GARBAGE!" * 10)
    assert "expected a FRAM or DONE message" in replies[-1]["error"]
    replies = raw_job(path, job(clip, ["fr"]), MESSAGE.pack(FRAME_MAGIC, 5) + b"12345")
    assert "message of 5 bytes" in replies[-1]["error"]

    lines = submit(path, job(clip, ["fr"]), payloads)
    assert lines[-1]["done"] and len(lines) == clip.frames + 1


def test_shutdown_lets_a_running_job_finish(socket_dir, clip, fr_export):
    path = os.path.join(socket_dir, "s.sock")
    stop, thread = start_server(path, JobEngines(fr=fr_export.path), 20)
    payloads = frame_payloads(clip)

    def slow():
        for i, payload in enumerate(payloads):
            if i == 2:
                stop.set()  # shutdown requested while the job is running
                time.sleep(0.5)
            yield payload

    lines = submit(path, job(clip, ["fr"]), slow())
    assert lines[-1]["done"] and len(lines) == clip.frames + 1
    thread.join(30)
    assert not thread.is_alive() and not os.path.exists(path)


def test_shutdown_fails_a_job_that_outlasts_the_drain_timeout(socket_dir, clip, fr_export):
    path = os.path.join(socket_dir, "s.sock")
    stop, thread = start_server(path, JobEngines(fr=fr_export.path), 0.5)
    payload = frame_payloads(clip)[0]
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(path)
        replies = connection.makefile("rb")
        connection.sendall(json.dumps(job(clip, ["fr"])).encode() + b"\n")
        assert json.loads(replies.readline())["ok"]
        connection.sendall(MESSAGE.pack(FRAME_MAGIC, len(payload)) + payload)
        assert json.loads(replies.readline())["frameNum"] == 0
        stop.set()  # the client never sends DONE: after the drain timeout the server ends its job
        last = json.loads(replies.readline())
    assert last["error"].startswith("the server shut down before the job was done") and "frame 1" in last["error"]
    thread.join(30)
    assert not thread.is_alive() and not os.path.exists(path)


def test_serve_command_answers_jobs_and_stops_on_sigterm(socket_dir, clip, fr_export):
    path = os.path.join(socket_dir, "cli.sock")
    process = subprocess.Popen([sys.executable, "-m", "vqa_rt.cli", "serve", "--socket", path, "--fr", fr_export.path],
                               stderr=subprocess.PIPE)
    try:
        assert b"listening on" in process.stderr.readline()
        lines = submit(path, job(clip, ["fr"]), frame_payloads(clip))
        assert lines[-1]["done"]
        with pytest.raises(ServeError, match="not served here"):
            submit(path, job(clip, ["nr"]), [])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert not os.path.exists(path)


def test_a_second_server_on_the_same_socket_is_refused(server, fr_export):
    path, _ = server
    from vqa_rt.errors import InputError

    with pytest.raises(InputError, match="already listening"):
        serve(path, JobEngines(fr=fr_export.path), stop=threading.Event())


def test_frame_message_layout_is_what_the_protocol_document_says():
    assert MESSAGE.pack(FRAME_MAGIC, 6) == b"FRAM\x06\x00\x00\x00" and MESSAGE.pack(DONE_MAGIC, 0) == b"DONE" + bytes(4)
