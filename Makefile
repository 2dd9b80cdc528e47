# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := build/demo
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test bench kernels gpu-check clean

$(VENV)/.installed-%: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[$(subst +,$(comma),$*)]'
	touch $@

comma := ,

## demo: install, build an untrained FR checkpoint, export it to ONNX, make a clip and score it
demo: $(VENV)/.installed-export
	mkdir -p $(DEMO)
	$(BIN)/vqa-rt init fr --seed 0 --output $(DEMO)/fr_untrained.pt
	$(BIN)/vqa-rt export fr --checkpoint $(DEMO)/fr_untrained.pt --output $(DEMO)/fr.onnx
	$(BIN)/vqa-rt make-clip --reference $(DEMO)/ref.yuv --distorted $(DEMO)/dist.yuv --width 320 --height 240 --frames 24
	$(BIN)/vqa-rt score --engine $(DEMO)/fr.onnx --reference $(DEMO)/ref.yuv --distorted $(DEMO)/dist.yuv \
		--width 320 --height 240 --output $(DEMO)/scores.json --csv $(DEMO)/scores.csv
	@echo "per-frame results: $(DEMO)/scores.json, $(DEMO)/scores.csv"

## test: install test dependencies and run the whole suite
test: $(VENV)/.installed-export+test+eval+nr
	$(BIN)/python -m pytest

## bench: FR throughput and baseline metric throughput benchmarks (write benchmarks/results/)
bench: $(VENV)/.installed-export+test+eval
	$(BIN)/python benchmarks/fr_throughput.py
	$(BIN)/python benchmarks/baselines_speed.py

## kernels: build libvqa_kernels.so (and libvqa_trt_plugin.so when TENSORRT_ROOT is set) into build/kernels/lib
CMAKE_CUDA_ARCHITECTURES ?= 80;86;89;90
KERNELS_JOBS ?= 2
kernels:
	cmake -S . -B build/kernels "-DCMAKE_CUDA_ARCHITECTURES=$(CMAKE_CUDA_ARCHITECTURES)" \
		$(if $(TENSORRT_ROOT),"-DTENSORRT_ROOT=$(TENSORRT_ROOT)")
	cmake --build build/kernels -j$(KERNELS_JOBS)

## gpu-check: on a machine with an NVIDIA GPU: the kernels for it, every GPU test, the GPU kernel benchmark
gpu-check: $(VENV)/.installed-export+test+gpu
	$(MAKE) kernels CMAKE_CUDA_ARCHITECTURES=native
	$(BIN)/python -m pytest -m gpu -rs
	$(BIN)/python benchmarks/gpu_kernels.py

clean:
	rm -rf build $(VENV)
