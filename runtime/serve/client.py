"""A client for ``vqa-rt serve`` (the protocol is in ``docs/serve-protocol.md``)."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Callable, Iterable

from vqa_rt.errors import VqaRtError
from vqa_rt.runtime.serve.protocol import DONE_MAGIC, FRAME_MAGIC, MESSAGE


class ServeError(VqaRtError):
    """The server refused or failed the job; the message is its error line."""


def submit(path: str, job: dict[str, Any], frames: Iterable[bytes],
           on_line: Callable[[dict[str, Any]], None] | None = None,
           timeout: float | None = 300) -> list[dict[str, Any]]:
    """Run ``job`` (a job header) on the server at ``path``, sending ``frames`` (each message's payload:
    the source frame's planes then the distorted frame's, for the videos the job reads) from a thread
    while the per-frame lines are read. Returns the per-frame lines then the final ``done`` line;
    raises :class:`ServeError` on an error line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(path)
        replies = connection.makefile("rb")
        connection.sendall((json.dumps(job) + "\n").encode())
        ack = json.loads(replies.readline() or b'{"error": "the server closed the connection"}')
        if "error" in ack:
            raise ServeError(ack["error"])

        def send() -> None:
            try:
                for payload in frames:
                    connection.sendall(MESSAGE.pack(FRAME_MAGIC, len(payload)) + payload)
                connection.sendall(MESSAGE.pack(DONE_MAGIC, 0))
            except OSError:
                pass  # the server ended the job; its error line says why

        sender = threading.Thread(target=send, name="serve-client-send", daemon=True)
        sender.start()
        lines = []
        for raw in replies:
            line = json.loads(raw)
            if "error" in line:
                raise ServeError(line["error"])
            lines.append(line)
            if on_line is not None:
                on_line(line)
            if line.get("done"):
                break
        sender.join(timeout=5)
        if not lines or not lines[-1].get("done"):
            raise ServeError("the server closed the connection before the job was done")
        return lines
