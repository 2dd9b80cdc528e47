"""The Ray cluster a batch runs on: its address checked, a quiet connection, and the nodes that can
host a worker (a worker's CPUs and GPUs fit them), each checked to read every file of the batch.

Ray is imported only here and in :mod:`.ray_batch`, and only when ``--ray`` is given. The
connection timeouts are set before the import: Ray's defaults retry an unreachable cluster for
about 14 minutes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Iterator

from vqa_rt.errors import BackendUnavailableError, ClusterError, InputError
from vqa_rt.runtime.checks import finite_number

CONNECT_TIMEOUT_S = 5.0  # the TCP probe of a given address
RAY_TIMEOUTS = {"RAY_NUM_REDIS_GET_RETRIES": "1", "RAY_py_gcs_connect_timeout_s": "5",
                "RAY_gcs_rpc_server_connect_timeout_s": "2"}
NAMESPACE = "vqa-rt"
SHOWN_PATHS = 3  # unreadable files named in the error


@dataclass(frozen=True)
class WorkerShape:
    """What one Ray worker reserves: CPUs (more than 0) and GPUs (0, a fraction to share one, or whole ones)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self):
        finite_number(self.cpus, "--cpus-per-worker", above=0)
        finite_number(self.gpus, "--gpus-per-worker", at_least=0)
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise InputError(f"--gpus-per-worker must be a fraction of one GPU or whole GPUs, got {self.gpus:g}")

    def fits(self, resources: dict[str, float]) -> int:
        """How many workers of this shape the ``resources`` of a node hold."""
        counts = [resources.get("CPU", 0.0) / self.cpus]
        if self.gpus:
            counts.append(resources.get("GPU", 0.0) / self.gpus)
        return math.floor(min(counts) + 1e-9)

    def options(self) -> dict[str, float]:
        return {"num_cpus": self.cpus, "num_gpus": self.gpus}


def import_ray():
    """The ``ray`` module with bounded connection timeouts, or one line saying how to install it."""
    for name, value in RAY_TIMEOUTS.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("--ray needs Ray: pip install 'vqa-rt[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--ray {address!r}: give 'auto' (the cluster this machine is part of) or the head "
                         "node's HOST:PORT (the --port of 'ray start --head', 6379 by default)")
    return host.strip("[]"), int(port)


def check_address(address: str) -> None:
    """Refuse an address Ray cannot connect to quickly: a malformed one, Ray Client's ``ray://``, or a
    HOST:PORT where nothing listens (Ray itself would retry for minutes)."""
    if address.startswith("ray://"):
        raise InputError(f"--ray {address}: Ray Client addresses are not supported; run score-batch on a node of "
                         "the cluster and give the head's HOST:PORT (or auto)")
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address or address == "auto":
            return  # Ray looks for a cluster on this machine and answers at once
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise ClusterError(f"--ray {address}: cannot reach a Ray cluster there ({reason}); start one with "
                           "'ray start --head --port PORT' or check the address") from None


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """Connected to the Ray cluster at ``address`` (``auto`` or HOST:PORT) for the block: the ``ray`` module.
    The caller's SIGINT and SIGTERM handlers stay in place (``ray.init`` replaces them)."""
    ray = import_ray()
    check_address(address)
    in_main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # ConnectionError, version mismatches, authentication: all one line
        raise ClusterError(f"--ray {address}: cannot connect: {' '.join(str(exc).split())}") from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_nodes(ray, shape: WorkerShape) -> dict[str, int]:
    """The alive nodes that can host a worker: node ID -> how many workers of ``shape`` fit it."""
    nodes = {node["NodeID"]: shape.fits(node["Resources"]) for node in ray.nodes() if node["Alive"]}
    return {node: count for node, count in nodes.items() if count}


def _unreadable(paths: list[str]) -> tuple[str, list[str]]:
    """Run on a node: its host name, and the ``paths`` it cannot open and read."""
    missing = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError:
            missing.append(path)
    return socket.gethostname(), missing


def check_nodes_read(ray, nodes: dict[str, int], paths: list[str]) -> dict[str, int]:
    """The ``nodes`` (node ID -> workers it holds) still there, each checked to read every one of ``paths``:
    :class:`ClusterError` naming the first that cannot. A node gone since it was listed is left out."""
    from ray.exceptions import NodeDiedError, TaskUnschedulableError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_unreadable)
    unique = sorted(set(paths))
    shared = ray.put(unique)
    calls = {node: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(shared)
             for node in nodes}
    present = {}
    for node, call in calls.items():
        try:
            host, missing = ray.get(call)
        except (TaskUnschedulableError, NodeDiedError):  # the node is gone (Ray may list it for a few seconds more)
            continue
        if missing:
            shown = ", ".join(missing[:SHOWN_PATHS]) + (", ..." if len(missing) > SHOWN_PATHS else "")
            raise ClusterError(f"Ray node {node[:8]} ({host}) cannot read {len(missing)} of the batch's "
                               f"{len(unique)} files ({shown}): every node needs the videos and engine files "
                               "at the same paths (shared storage)")
        present[node] = nodes[node]
    return present
