"""``make gpu-check`` (benchmarks/gpu_check.sh) rehearsed where there is no GPU: it installs vqa-rt with
``pip --no-index`` on the given Python's own packages (nothing downloaded), builds the kernels for sm_90,
and then fails because no GPU test could pass and the benchmark finds no GPU, with every step's log
in the results folder. On the lent H200 the same command runs the tests and the benchmark."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vqa_rt.runtime.engines.native.kernel_library import KernelLibrary

REPO = Path(__file__).resolve().parents[2]


def test_the_offline_gpu_check_installs_builds_for_sm90_and_fails_without_a_gpu(tmp_path):
    if not (shutil.which("cmake") and shutil.which("nvcc")):
        pytest.skip("cmake or nvcc (CUDA toolkit) not found: the kernels cannot be built here")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    results = tmp_path / "results"
    env = {**os.environ, "GPU_PYTHON": sys.executable, "GPU_WHEELS": str(wheels), "PIP_FIND_LINKS": "",
           "PIP_INDEX_URL": "http://127.0.0.1:9/unreachable"}  # any download attempt would fail
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(results)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    summary = (results / "gpu-check.log").read_text()
    assert done.returncode == 1, summary
    for step in ("install", "imports", "kernels"):
        assert f"{step}: exit status 0" in summary, summary
    assert "tests: none passed (every GPU test skipped: no GPU?)" in summary
    assert "benchmark: exit status 2" in summary and "no GPU visible to torch" in summary
    for log in ("install", "imports", "kernels", "tests", "benchmark"):
        assert (results / f"{log}.log").exists()
    library = KernelLibrary(str(REPO / "build" / "gpu-kernels" / "lib" / "libvqa_kernels.so"))
    assert "architectures 90" in library.build_info()
