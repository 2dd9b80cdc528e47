"""benchmarks/gpu_kernels.py where no GPU is visible: the layer shapes it times (the FR model's
deformable convolutions at 1080p, read off the model) and its refusal to run, with one line on
stderr, exit status 2 and no result file. Its measurements themselves need a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_kernels.py"


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("torch")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_kernels
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_kernels


def test_the_timed_shapes_are_the_fr_models_deformable_convs_at_1080p(bench):
    layers = bench.fr_deform_layers(1920, 1080)
    # ResNet-18 stages 2..4 (strides 8, 16, 32; each stride-2 conv rounds up), reference and distorted
    # features concatenated, 64 fusion channels, 3x3, pad 1, two offset groups.
    assert [layer["x"] for layer in layers] == [[1, 256, 135, 240], [1, 512, 68, 120], [1, 1024, 34, 60]]
    assert [layer["weight"] for layer in layers] == [[64, 256, 3, 3], [64, 512, 3, 3], [64, 1024, 3, 3]]
    params = [bench.layer_params(layer) for layer in layers]
    assert [(p.out_height, p.out_width, p.pad_top, p.pad_right, p.offset_group) for p in params] == [
        (135, 240, 1, 1, 2), (68, 120, 1, 1, 2), (34, 60, 1, 1, 2)]
    assert bench.flops(params[0]) == 2 * 64 * 256 * 9 * 135 * 240


def test_without_a_gpu_it_says_so_on_one_line_and_writes_nothing(bench, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the benchmark would run")
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith("gpu_kernels: error: no GPU visible to torch")
    assert not (tmp_path / "out").exists()
