"""``vqa-rt score-batch --ray`` on a real Ray cluster: two nodes of one CPU each on 127.0.0.1, started
and always stopped by the module (tests/ray_local.py). The output equals the local run's row for row;
a worker process or a whole node lost mid-run costs nothing but time (its rows go to the other
workers) and every row is written exactly once; bad addresses and unreadable files are one line."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ray_local import ENV, LocalCluster, actor_titles  # noqa: E402

sys.path.pop(0)

ROWS = 12
FRAMES = 12  # about 0.5 s a row on a 2-core machine: long enough to kill a worker with rows in flight
ENGINES = ("ssim",)  # with the session's FR model (added by the fixtures)


def _vqa_rt(*args, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqa_rt.cli", "score-batch", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV},
                            **popen)


def _run(*args) -> subprocess.CompletedProcess:
    process = _vqa_rt(*args)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _rows(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """ROWS distorted videos (JPEG qualities 10..65) of one FRAMES-frame 160x120 reference."""
    from vqa_rt.runtime.frames.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("raybatch")
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "width", "height", "mos"])
        for i in range(ROWS):
            make_test_clip(str(folder / "ref.yuv"), str(folder / f"d{i:02d}.yuv"), 160, 120, FRAMES, seed=5, quality=10 + 5 * i)
            writer.writerow(["ref.yuv", f"d{i:02d}.yuv", 160, 120, i])
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="needs Ray: pip install 'vqa-rt[ray]'")
    with LocalCluster(nodes=2, cpus=1) as started:
        yield started


def _engines(fr_export) -> list[str]:
    return [arg for engine in (fr_export.path, *ENGINES) for arg in ("-e", engine)]


def _without_seconds(rows: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in row.items() if k != "seconds"} for row in rows), key=lambda row: row["distorted"])


def _scoring_workers() -> list[int]:
    return [pid for pid, title in actor_titles("RowWorker").items() if title.endswith(".score")]


def _kill_mid_run(manifest, output, kill, *args, signal_driver: int | None = None) -> subprocess.CompletedProcess:
    """Run a batch on Ray and call ``kill(pids)`` once both workers are scoring rows (``pids``) and a row is
    written: each worker then has rows in flight. ``signal_driver`` is then sent to the command."""
    process = _vqa_rt(manifest, "-o", output, *args)
    deadline = time.monotonic() + 120
    while (len(_scoring_workers()) < 2 or not _rows(output)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()
    kill(_scoring_workers())
    if signal_driver:
        process.send_signal(signal_driver)
    assert len(_rows(output)) < ROWS - 2, "the batch was nearly done before the kill"
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _check_exactly_once(rows: list[dict]) -> None:
    assert sorted(row["distorted"] for row in rows) == [f"d{i:02d}.yuv" for i in range(ROWS)]


def test_ray_output_equals_the_local_run_row_for_row(cluster, manifest, fr_export, tmp_path):
    local, on_ray = tmp_path / "local.csv", tmp_path / "ray.csv"
    done = _run(manifest, *_engines(fr_export), "-o", local, "--workers", "2", "--threads", "1")
    assert done.returncode == 0, done.stderr
    done = _run(manifest, *_engines(fr_export), "-o", on_ray, "--ray", cluster.address)
    assert done.returncode == 0, done.stderr
    assert f"rows: {ROWS} scored, 0 failed, 0 already in {on_ray}, {ROWS} in the manifest (2 Ray workers)" in done.stdout
    assert "UNTRAINED" in done.stderr  # the session's FR model has random weights
    rows = _rows(on_ray)
    _check_exactly_once(rows)
    assert list(rows[0]) == list(_rows(local)[0])
    assert _without_seconds(rows) == _without_seconds(_rows(local))  # every score to its last printed digit


def test_a_worker_killed_mid_run_leaves_every_row_once_and_scored(cluster, manifest, fr_export, tmp_path):
    output = tmp_path / "ray.csv"

    done = _kill_mid_run(manifest, output, lambda pids: os.kill(pids[0], signal.SIGKILL), *_engines(fr_export),
                         "--ray", cluster.address)
    assert done.returncode == 0, done.stderr
    assert "vqa-rt: Ray worker " in done.stderr and " lost (" in done.stderr and " recorded as failed" in done.stderr
    assert "1 lost and replaced" in done.stdout
    rows = _rows(output)
    _check_exactly_once(rows)
    assert {row["status"] for row in rows} == {"ok"}


def test_an_interrupted_driver_stops_its_workers_and_resumes_exactly_once(cluster, manifest, fr_export, tmp_path):
    output = tmp_path / "ray.csv"
    stopped = _kill_mid_run(manifest, output, lambda pids: None, *_engines(fr_export), "--ray", cluster.address,
                            signal_driver=signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert f"interrupted by SIGINT (the rows already scored are in {output}; run the same command again" in stopped.stderr
    kept = len(_rows(output))
    deadline = time.monotonic() + 30
    while actor_titles("RowWorker") and time.monotonic() < deadline:  # the workers end with their driver
        time.sleep(0.1)
    assert not actor_titles("RowWorker")
    done = _run(manifest, *_engines(fr_export), "-o", output, "--ray", cluster.address)
    assert done.returncode == 0, done.stderr
    assert f"rows: {ROWS - kept} scored, 0 failed, {kept} already in" in done.stdout
    _check_exactly_once(_rows(output))


def test_unreadable_files_on_the_nodes_are_one_line_before_anything_is_written(cluster, manifest, tmp_path):
    broken = tmp_path / "manifest.csv"
    broken.write_text(f"reference,distorted,width,height\n{manifest.parent / 'ref.yuv'},{manifest.parent / 'd00.yuv'},"
                      f"160,120\n{manifest.parent / 'ref.yuv'},{tmp_path / 'missing.yuv'},160,120\n")
    output = tmp_path / "out.csv"
    done = _run(broken, "-e", "psnr", "-o", output, "--ray", cluster.address)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vqa-rt: error: Ray node ") and "cannot read 1 of the batch's 3 files" in done.stderr
    assert str(tmp_path / "missing.yuv") in done.stderr and "shared storage" in done.stderr
    assert not output.exists()


def test_a_worker_that_cannot_open_an_engine_stops_the_batch_in_one_line(cluster, manifest, fr_export, tmp_path):
    import onnx

    broken = onnx.load(fr_export.path)  # its vqa-rt metadata reads; ONNX Runtime cannot load the graph
    broken.graph.node[0].op_type = "NoSuchOp"
    onnx.save(broken, tmp_path / "broken.onnx")
    output = tmp_path / "out.csv"
    done = _run(manifest, "-e", tmp_path / "broken.onnx", "-o", output, "--ray", cluster.address)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vqa-rt: error: a Ray worker on ") and "cannot open the engines: " in done.stderr
    assert "ONNX Runtime cannot load this model" in done.stderr
    assert _rows(output) == []  # the header only: no row was scored


def test_more_workers_than_the_cluster_holds_is_one_line(cluster, manifest, tmp_path):
    done = _run(manifest, "-e", "psnr", "-o", tmp_path / "out.csv", "--ray", cluster.address, "--workers", "3")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "holds 2 workers of 1 CPU and 0 GPU, not 3" in done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_node_lost_mid_run_records_or_retries_its_rows_exactly_once(cluster, manifest, fr_export, tmp_path):
    """Last in the module: it kills the second node. Without retries (--max-retries 0) the rows in flight on the
    lost node are recorded as failed; --retry-failed then scores them on the node left."""
    output = tmp_path / "ray.csv"
    done = _kill_mid_run(manifest, output, lambda pids: cluster.kill_node(1), *_engines(fr_export), "--ray",
                         cluster.address, "--max-retries", "0")
    assert done.returncode == 1, done.stderr
    rows = _rows(output)
    _check_exactly_once(rows)
    failed = [row for row in rows if row["status"] == "failed"]
    # the rows of the groups the lost node's worker had in flight: 12 rows of one reference, 2 workers: groups of 3
    assert len(failed) in (3, 6), rows
    assert all(row["error"].startswith("ray: its worker was lost 1 time (last: ") for row in failed)
    assert {row["status"] for row in rows if row not in failed} == {"ok"}
    again = _run(manifest, *_engines(fr_export), "-o", output, "--ray", cluster.address, "--retry-failed")
    assert again.returncode == 0, again.stderr
    assert f"rows: {len(failed)} scored, 0 failed, {ROWS - len(failed)} already in" in again.stdout
    assert "(1 Ray workers)" in again.stdout
    rows = _rows(output)
    _check_exactly_once(rows)
    assert {row["status"] for row in rows} == {"ok"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["--ray", "127.0.0.1:{port}"], "--ray 127.0.0.1:{port}: cannot reach a Ray cluster there"),
    (["--ray", "ray://head:10001"], "Ray Client addresses are not supported"),
    (["--ray", "head"], "give 'auto' (the cluster this machine is part of) or the head node's HOST:PORT"),
    (["--ray", "head:0"], "give 'auto'"),
    (["--ray", "127.0.0.1:1", "--cpus-per-worker", "0"], "--cpus-per-worker must be greater than 0, got 0"),
    (["--ray", "127.0.0.1:1", "--gpus-per-worker", "1.5"], "a fraction of one GPU or whole GPUs, got 1.5"),
    (["--ray", "127.0.0.1:1", "--max-retries", "-1"], "--max-retries must be 0 or more"),
    (["--ray", "127.0.0.1:1", "--device", "cuda"], "on Ray, --device cuda and TensorRT plans need --gpus-per-worker"),
    (["--gpus-per-worker", "1", "--max-retries", "1"], "--gpus-per-worker, --max-retries: only with --ray"),
])
def test_bad_ray_options_and_unreachable_clusters_are_one_line(manifest, tmp_path, args, message):
    port = _closed_port()
    output = tmp_path / "out.csv"
    start = time.monotonic()
    done = _run(manifest, "-e", "psnr", "-o", output, *(arg.format(port=port) for arg in args))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vqa-rt: error: ") and message.format(port=port) in done.stderr, done.stderr
    assert time.monotonic() - start < 30  # not Ray's minutes of retries
    assert not output.exists()


def test_without_ray_installed_it_says_how_to_install_it(monkeypatch):
    from vqa_rt.errors import BackendUnavailableError
    from vqa_rt.runtime.pipeline.ray_cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendUnavailableError, match=r"--ray needs Ray: pip install 'vqa-rt\[ray\]'"):
        import_ray()
