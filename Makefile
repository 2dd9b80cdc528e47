# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint bench fuzz train-qpmap qpmap-model kernels gpu-check clean

$(VENV)/.installed-%: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(subst +,$(comma),$*)]'
	touch $@

comma := ,

## demo: install, export the shipped FR model (distilled from VMAF) to ONNX, make a clip and score it
demo: $(VENV)/.installed-cpu+export
	mkdir -p $(DEMO)
	$(BIN)/vqa-rt export fr --output $(DEMO)/fr.onnx
	$(BIN)/vqa-rt make-clip --reference $(DEMO)/ref.yuv --distorted $(DEMO)/dist.yuv --width 320 --height 240 --frames 24
	$(BIN)/vqa-rt score --engine $(DEMO)/fr.onnx --reference $(DEMO)/ref.yuv --distorted $(DEMO)/dist.yuv \
		--width 320 --height 240 --output $(DEMO)/scores.json --csv $(DEMO)/scores.csv
	@echo "per-frame results: $(DEMO)/scores.json, $(DEMO)/scores.csv"

DEV := cpu+export+test+eval+nr+lint+rtx+fuzz+train+ray

## test: install test dependencies, lint, and run the whole suite
test: lint
	$(BIN)/python -m pytest

## lint: ruff, then the import contracts of pyproject.toml checked on the package as pip installs it
# (an editable install maps vqa_rt.runtime to runtime/ in a way import-linter cannot see; a real install
# into build/lint is the tree users get, so the contracts see every module that ships)
LINT_TREE := build/lint
lint: $(VENV)/.installed-$(DEV)
	$(BIN)/ruff check .
	rm -rf $(LINT_TREE) build/lib build/bdist.*
	$(PIP_INSTALL) --no-deps --no-build-isolation --target $(LINT_TREE) .
	cd $(LINT_TREE) && PYTHONPATH=. $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml

## bench: FR throughput and baseline metric throughput benchmarks (write benchmarks/results/)
bench: $(VENV)/.installed-cpu+export+test+eval
	$(BIN)/python benchmarks/fr_throughput.py
	$(BIN)/python benchmarks/baselines_speed.py

## fuzz: every atheris harness of tests/fuzz for FUZZ_SECONDS each (FUZZ_JOBS at once), work corpora, logs,
# crashing inputs and results.md under build/fuzz (seeded from tests/fuzz/corpus)
FUZZ_SECONDS ?= 1200
FUZZ_JOBS ?= 1
fuzz: $(VENV)/.installed-$(DEV)
	$(BIN)/python tests/fuzz/campaign.py --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --work build/fuzz

## train-qpmap: train the QS model (seeded; resumes from build/train-qpmap; about 45 min on 2 cores), then
# export the ONNX that vqa-rt qpmap runs; copy the weights to export/models/weights/ to ship them
train-qpmap: $(VENV)/.installed-cpu+export+train
	$(BIN)/vqa-rt train qpmap --workdir build/train-qpmap --output build/train-qpmap/qpmap.safetensors

## qpmap-model: the shipped QS model as ONNX (runtime/qpmaps/qs_model.onnx) from the shipped weights
qpmap-model: $(VENV)/.installed-cpu+export+train
	$(BIN)/vqa-rt export qpmap --output runtime/qpmaps/qs_model.onnx

## kernels: build libvqa_kernels.so (and libvqa_trt_plugin.so when TENSORRT_ROOT is set) into build/kernels/lib
CMAKE_CUDA_ARCHITECTURES ?= 80;86;89;90
KERNELS_JOBS ?= 2
kernels:
	cmake -S . -B build/kernels "-DCMAKE_CUDA_ARCHITECTURES=$(CMAKE_CUDA_ARCHITECTURES)" \
		$(if $(TENSORRT_ROOT),"-DTENSORRT_ROOT=$(TENSORRT_ROOT)")
	cmake --build build/kernels -j$(KERNELS_JOBS)

## gpu-check: on a machine with an NVIDIA GPU, offline (the lent H200 has no network): kernels built for GPU_ARCH
# (90: Hopper), the GPU tests, the GPU kernel benchmark, all with GPU_PYTHON's own packages (torch with CUDA,
# onnxruntime, pytest; nothing downloaded), results and logs in GPU_RESULTS (see benchmarks/gpu_check.sh)
GPU_RESULTS ?= build/gpu-check
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_RESULTS)

clean:
	rm -rf build $(VENV)
