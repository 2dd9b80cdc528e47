#!/usr/bin/env bash
# `make gpu-check`: the GPU check, offline. On a machine with an NVIDIA GPU and no network (the lent H200):
#   1. a venv over $GPU_PYTHON's own packages (torch with CUDA, onnxruntime, numpy, onnx, opencv, typer,
#      pytest), vqa-rt installed into it with `pip --no-index` (anything missing comes from $GPU_WHEELS only);
#   2. the kernels built for $GPU_ARCH (default 90, Hopper) with the machine's nvcc and CMake;
#   3. the GPU tests: the kernels against ONNX Runtime's DeformConv and the float64 / CPU references
#      (TensorRT's skip where TensorRT is not installed);
#   4. the GPU kernel benchmark (benchmarks/gpu_kernels.py).
# Everything, logs included, goes to the folder given (default build/gpu-check); each step has a time limit,
# so the whole check stays under 8 minutes. Exit status: 0 when the tests and the benchmark pass.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=$(mkdir -p "${1:-build/gpu-check}" && cd "${1:-build/gpu-check}" && pwd)
PYTHON=${GPU_PYTHON:-python3}
ARCH=${GPU_ARCH:-90}
WHEELS=${GPU_WHEELS:-build/gpu-wheels}
VENV=build/gpu-venv
BUILD=build/gpu-kernels
LIBRARY=$PWD/$BUILD/lib/libvqa_kernels.so
SUMMARY=$RESULTS/gpu-check.log

say() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }

# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in NAME.log; says how it went
step() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    say "$name: $*"
    timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1
    local status=$?
    say "$name: exit status $status after $((SECONDS - start)) s$([ $status = 124 ] && echo " (over its $limit s)")"
    return $status
}

: >"$SUMMARY"
say "results in $RESULTS; python $PYTHON; CUDA architecture sm_$ARCH"
nvidia-smi >"$RESULTS/nvidia-smi.txt" 2>&1 || say "nvidia-smi: not available"
mkdir -p "$WHEELS"
step venv 60 "$PYTHON" -m venv --system-site-packages --clear "$VENV" || exit 1
step install 120 "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELS" --no-build-isolation \
    --disable-pip-version-check -e '.[cpu]' || { tail -n 3 "$RESULTS/install.log"; exit 1; }
step kernels 240 bash -c "cmake -S . -B $BUILD -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DVQA_KERNELS_WERROR=ON \
    && cmake --build $BUILD -j$(nproc) --target vqa_kernels" || { tail -n 20 "$RESULTS/kernels.log"; exit 1; }
step tests 240 env VQA_KERNELS_LIBRARY="$LIBRARY" "$VENV/bin/python" -m pytest -m gpu -rs -p no:cacheprovider \
    --junitxml "$RESULTS/tests.xml" tests/kernels tests/runtime/engines
tests=$?
tail -n 1 "$RESULTS/tests.log" | tee -a "$SUMMARY"
step benchmark 240 "$VENV/bin/python" benchmarks/gpu_kernels.py --library "$LIBRARY" --output-dir "$RESULTS"
benchmark=$?
tail -n 3 "$RESULTS/benchmark.log" | tee -a "$SUMMARY"
say "done: tests exit status $tests, benchmark exit status $benchmark"
[ $tests = 0 ] && [ $benchmark = 0 ]
