#!/usr/bin/env bash
# `make gpu-check`: the GPU check, offline. On a machine with an NVIDIA GPU and no network (the lent H200):
#   1. vqa-rt built from this tree into build/gpu-site with `pip --no-index` (and any wheel in $GPU_WHEELS, for
#      a package $GPU_PYTHON lacks), to run on $GPU_PYTHON's own packages: torch with CUDA, onnxruntime, numpy,
#      onnx, opencv, typer, pytest. $GPU_PYTHON's environment is not changed (a venv made from it would not see
#      its packages where it is itself a venv, as on the H200 image);
#   2. the kernels built for $GPU_ARCH (default 90, Hopper) with the machine's nvcc and CMake;
#   3. the GPU tests of $GPU_TESTS (default tests/kernels): the kernels against ONNX Runtime's DeformConv and the
#      float64 / CPU references;
#   4. the GPU kernel benchmark (benchmarks/gpu_kernels.py).
# Everything, logs included, goes to the folder given (default build/gpu-check); each step has a time limit,
# so the whole check stays under 8 minutes. Exit status: 0 when the tests and the benchmark pass.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=$(mkdir -p "${1:-build/gpu-check}" && cd "${1:-build/gpu-check}" && pwd)
PYTHON=${GPU_PYTHON:-python3}
ARCH=${GPU_ARCH:-90}
WHEELS=${GPU_WHEELS:-build/gpu-wheels}
TESTS=${GPU_TESTS:-tests/kernels}  # the TensorRT runner's GPU tests (tests/runtime/engines) need TensorRT and onnxscript
SITE=$PWD/build/gpu-site
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
step install 45 "$PYTHON" -m pip install --no-index --no-deps --no-build-isolation --disable-pip-version-check \
    --upgrade --target "$SITE" . $(ls "$WHEELS"/*.whl 2>/dev/null) || { tail -n 5 "$RESULTS/install.log"; exit 1; }
export PYTHONPATH=$SITE
step imports 30 "$PYTHON" -c "import vqa_rt, numpy, onnx, cv2, typer, onnxruntime, torch, pytest
print('vqa-rt', vqa_rt.__version__, 'torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available())" \
    || { tail -n 3 "$RESULTS/imports.log"; exit 1; }
tee -a "$SUMMARY" <"$RESULTS/imports.log"
step kernels 120 bash -c "cmake -S . -B $BUILD -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DVQA_KERNELS_WERROR=ON \
    && cmake --build $BUILD -j$(nproc) --target vqa_kernels" || { tail -n 20 "$RESULTS/kernels.log"; exit 1; }
# PYTHONSAFEPATH: this tree's vqa_rt/ (the package root alone) must not shadow the build in $SITE
step tests 90 env VQA_KERNELS_LIBRARY="$LIBRARY" PYTHONSAFEPATH=1 "$PYTHON" -m pytest -m gpu -rs -p no:cacheprovider \
    --junitxml "$RESULTS/tests.xml" $TESTS
tests=$?
tail -n 1 "$RESULTS/tests.log" | tee -a "$SUMMARY"
grep -qE "[0-9]+ passed" "$RESULTS/tests.log" || { say "tests: none passed (every GPU test skipped: no GPU?)"; tests=1; }
step benchmark 180 "$PYTHON" benchmarks/gpu_kernels.py --library "$LIBRARY" --output-dir "$RESULTS"
benchmark=$?
tail -n 3 "$RESULTS/benchmark.log" | tee -a "$SUMMARY"
say "done: tests exit status $tests, benchmark exit status $benchmark"
[ $tests = 0 ] && [ $benchmark = 0 ]
