"""The quantization modes of ``vqa-rt quantize``: what each writes and who runs it. Kept apart from the
quantizer so the command line and the benchmarks name the modes without importing ONNX."""

from __future__ import annotations

from dataclasses import dataclass

WEIGHT_BLOCK = 32  # weights per scale in the weight-only modes
WEIGHT_ONLY_ACCURACY_LEVEL = 4  # MatMulNBits computes with int8 activations (ONNX Runtime's fastest CPU path)
MIN_CALIBRATION_FRAMES = 16
# Calibration frames used at most, spread over those selected: ONNX Runtime's calibrator keeps every quantized
# layer's input for each of them in memory (the FR model: about 5 MB per 320x192 pair, 170 MB per 1080p pair).
MAX_CALIBRATION_FRAMES = 64


@dataclass(frozen=True)
class Mode:
    description: str
    calibrated: bool
    target: str  # who runs the result


MODES = {
    "int8": Mode("int8 Q/DQ (symmetric, per-channel weights, calibrated activations)", True,
                 "TensorRT int8, ONNX Runtime CPU"),
    "int8-weight-only": Mode(f"int8 weights in blocks of {WEIGHT_BLOCK} (ONNX Runtime MatMulNBits)", False,
                             "ONNX Runtime CPU"),
    "int4-weight-only": Mode(f"int4 weights in blocks of {WEIGHT_BLOCK} (ONNX Runtime MatMulNBits)", False,
                             "ONNX Runtime CPU"),
    "fp8": Mode("FLOAT8E4M3FN Q/DQ (per-tensor, Distribution-calibrated activations)", True,
                "TensorRT fp8 (GPUs with FP8 tensor cores)"),
}
