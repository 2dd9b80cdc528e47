"""A real Ray cluster of several nodes on this machine, for the ``--ray`` tests and benchmark.

Each node is ``ray start --block`` in a process session of its own (the head first, then the others
joining it on 127.0.0.1), stopped by PID: never ``ray stop``, which stops every Ray process on the
machine. Token authentication and usage reporting are off, and a stopped node does not drain.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
STARTED = "Ray runtime started."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalCluster:
    """``nodes`` Ray nodes of ``cpus`` CPUs each; a context manager that starts them and always stops them."""

    def __init__(self, nodes: int = 2, cpus: int = 1, timeout: float = 90.0):
        self.nodes, self.cpus, self.timeout = nodes, cpus, timeout
        self.port = _free_port()
        self.folder = tempfile.mkdtemp(prefix="vqa-ray-")  # short: Ray's socket paths must fit 107 bytes
        self.processes: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_node(self, index: int) -> None:
        role = ["--head", "--port", str(self.port), "--temp-dir", os.path.join(self.folder, "tmp"),
                "--include-dashboard=false"] if index == 0 else ["--address", self.address,
                                                                 "--dashboard-agent-listen-port", "0"]
        log_path = os.path.join(self.folder, f"node{index}.log")
        with open(log_path, "w") as log:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *role, "--node-ip-address",
                 "127.0.0.1", "--num-cpus", str(self.cpus), "--num-gpus", "0", "--disable-usage-stats",
                 "--object-store-memory", str(100 * 2**20), "--resources", f'{{"vqa_test_node{index}": 1}}'],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV}, start_new_session=True))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with open(log_path) as log:
                if STARTED in log.read():
                    return
            if self.processes[-1].poll() is not None:
                break
            time.sleep(0.1)
        with open(log_path) as log:
            raise RuntimeError(f"Ray node {index} did not start:\n{log.read()[-2000:]}")

    def __enter__(self) -> LocalCluster:
        try:
            for index in range(self.nodes):
                self._start_node(index)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def kill_node(self, index: int) -> None:
        """Lose node ``index`` at once, as a machine that fails: SIGKILL to every process of its session, its
        workers included (Ray puts each worker in a process group of its own, in the node's session)."""
        self._kill_session(self.processes[index])

    @staticmethod
    def _kill_session(process: subprocess.Popen) -> None:
        for pid in _pids():
            try:
                if os.getsid(pid) == process.pid:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        process.wait()

    def stop(self) -> None:
        """Stop the nodes, the others before the head; what does not stop within 20 s is killed."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            self._kill_session(process)  # the node's leftover processes, if any
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _pids() -> list[int]:
    """The processes of this machine."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def actor_titles(class_name: str) -> dict[int, str]:
    """The Ray actor processes of ``class_name`` on this machine: PID -> process title, which Ray sets to
    ``ray::<class>`` when idle and ``ray::<class>.<method>`` while a method runs."""
    titles = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                title = handle.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title == f"ray::{class_name}" or title.startswith(f"ray::{class_name}."):
            titles[pid] = title
    return titles
