"""ONNX -> quantized ONNX, calibrated on video frames, with a fidelity report.

Modes:

- ``int8``: explicit Q/DQ (``QuantizeLinear``/``DequantizeLinear``) around the inputs of
  every linear layer (``MatMul`` with a constant weight, ``Gemm``) and convolution:
  symmetric signed int8 (zero point 0), weights per output channel, activation ranges
  from MinMax calibration. That is what TensorRT (11 and later: precision comes from the
  graph) builds int8 kernels from; ONNX Runtime's CPU provider fuses the same pattern.
  Attention's activation-by-activation products, norms and softmax stay float.
- ``fp8``: the same Q/DQ placement with FLOAT8E4M3FN, per-tensor scales (Distribution
  calibration), for GPUs with FP8 tensor cores.
- ``int8-weight-only`` / ``int4-weight-only``: ONNX Runtime's ``MatMulNBits`` (weights
  in blocks of 32 with a scale each, symmetric), which its CPU provider runs with
  int8 arithmetic on the activations (accuracy level 4); no calibration needed.
  An ONNX Runtime contrib op: for the CPU, not for TensorRT.

The quantized file keeps the source's ``vqa_rt.*`` metadata and adds
``vqa_rt.quantization`` (mode, formats, calibration, fidelity report), so it scores
like the source (``vqa-rt score --engine model.q.onnx``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from vqa_rt.errors import InputError, ModelError
from vqa_rt.export.fidelity import FidelityReport, compare_models
from vqa_rt.runtime.model_info import read_model_info
from vqa_rt.runtime.nr_scorer import frame_inputs
from vqa_rt.runtime.writers import check_output_paths

QUANTIZABLE_KINDS = ("nr",)
MIN_CALIBRATION_FRAMES = 16
# Q/DQ graphs are written at opset 20: ONNX Runtime (up to 1.31 at least) fails to load int8 graphs
# with QuantizeLinear-21 once its QDQ optimisers run (onnxruntime issue 25526).
QDQ_OPSET = 20
WEIGHT_BLOCK = 32
_LARGE = 1_900_000_000  # bytes: protobuf's 2 GB limit, with a margin


@dataclass(frozen=True)
class Mode:
    description: str
    calibrated: bool
    target: str  # who runs the result


MODES = {
    "int8": Mode("int8 Q/DQ (symmetric, per-channel weights, MinMax-calibrated activations)", True,
                 "TensorRT int8, ONNX Runtime CPU"),
    "int8-weight-only": Mode(f"int8 weights in blocks of {WEIGHT_BLOCK} (ONNX Runtime MatMulNBits)", False,
                             "ONNX Runtime CPU"),
    "int4-weight-only": Mode(f"int4 weights in blocks of {WEIGHT_BLOCK} (ONNX Runtime MatMulNBits)", False,
                             "ONNX Runtime CPU"),
    "fp8": Mode("FLOAT8E4M3FN Q/DQ (per-tensor, Distribution-calibrated activations)", True,
                "TensorRT fp8 (GPUs with FP8 tensor cores)"),
}


class _Frames:
    """ONNX Runtime's calibration reader interface over a batch of frames, one frame per call."""

    def __init__(self, name: str, frames: np.ndarray):
        self.name, self.frames, self.position = name, frames, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position == len(self.frames):
            return None
        self.position += 1
        return {self.name: self.frames[self.position - 1: self.position]}

    def rewind(self) -> None:
        self.position = 0


def _at_qdq_opset(source: str) -> onnx.ModelProto:
    from onnx import version_converter

    model = onnx.load(source)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset <= QDQ_OPSET:
        return model
    try:
        return version_converter.convert_version(model, QDQ_OPSET)
    except Exception as exc:  # the converter raises for ops it cannot adapt
        raise ModelError(f"{source}: cannot convert opset {opset} to {QDQ_OPSET} for Q/DQ quantization "
                         f"({str(exc).splitlines()[0]}); export with --opset {QDQ_OPSET}") from None


def _static(source: str, output: str, mode: str, input_name: str, frames: np.ndarray, large: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp8 = mode == "fp8"
    qtype = QuantType.QFLOAT8E4M3FN if fp8 else QuantType.QInt8
    quantize_static(
        _at_qdq_opset(source), output, _Frames(input_name, frames), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm", "Conv"], per_channel=not fp8,
        activation_type=qtype, weight_type=qtype, use_external_data_format=large,
        calibrate_method=CalibrationMethod.Distribution if fp8 else CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "MatMulConstBOnly": True,
                       "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}},
    )


def _weight_only(source: str, output: str, bits: int, large: bool) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(source), bits=bits, block_size=WEIGHT_BLOCK, is_symmetric=True,
                                     accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(output, use_external_data_format=large)


def quantize_onnx(source: str, output: str, mode: str, input_name: str, frames: np.ndarray | None) -> None:
    """Write ``source`` quantized in ``mode`` to ``output`` (calibrated on ``frames`` where the mode needs it)."""
    large = os.path.getsize(source) > _LARGE or os.path.exists(f"{source}.data")
    if MODES[mode].calibrated:
        _static(source, output, mode, input_name, frames, large)
    else:
        _weight_only(source, output, 8 if mode == "int8-weight-only" else 4, large)


def _finish(quantized: str, source: str, output: str, record: dict[str, Any]) -> None:
    """Copy the source's vqa-rt metadata and the quantization record into ``quantized``, saved as ``output``."""
    model = onnx.load(quantized)
    source_meta = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
    del model.metadata_props[:]
    for key, value in {**source_meta, "vqa_rt.quantization": json.dumps(record)}.items():
        model.metadata_props.add(key=key, value=value)
    large = model.ByteSize() > _LARGE
    onnx.save_model(model, output, save_as_external_data=large, location=f"{os.path.basename(output)}.data")


def quantize_model(model: str, output: str, mode: str, calibration, options=None, *, evaluation=None,
                   threads: int = 0, min_frames: int = MIN_CALIBRATION_FRAMES) -> FidelityReport:
    """Quantize the exported model ``model`` to ``output`` and compare the two on ONNX Runtime CPU.

    ``calibration`` (and ``evaluation``, default: the calibration frames) are ``VideoInput`` s whose
    frames ``options`` (``ScoreOptions``; NR default 1 per second) select; at least ``min_frames``
    each. Everything is checked before anything is written. Returns the fidelity report, which is
    also stored in the output's metadata.
    """
    from vqa_rt.runtime.scoring import ScoreOptions

    options = options or ScoreOptions()
    if mode not in MODES:
        raise InputError(f"unknown quantization mode {mode!r} (known: {', '.join(MODES)})")
    info = read_model_info(model, expected_kind=QUANTIZABLE_KINDS)
    if "quantization" in info.metadata:
        raise InputError(f"{model}: is already quantized ({info.metadata['quantization']['mode']})")
    check_output_paths([output])
    sets = {"calibration": calibration, **({"evaluation": evaluation} if evaluation is not None else {})}
    frames = {}
    for role, video in sets.items():
        indices, frames[role] = frame_inputs(info, video, options)
        if len(indices) < min_frames:
            raise InputError(f"{video.path}: {role} set too small: {len(indices)} frames selected, need at least "
                             f"{min_frames} (use a longer video or sample more frames: --sample-fps, "
                             "--sample-frames, --frame-stride)")
    partial = f"{output}.partial"
    try:
        quantize_onnx(model, partial, mode, info.inputs[0], frames["calibration"])
        report = compare_models(model, partial, info.inputs[0], frames.get("evaluation", frames["calibration"]),
                                threads=threads, batch_size=options.batch_size)
        record = {"mode": mode, "description": MODES[mode].description, "target": MODES[mode].target,
                  "source": model, "calibration": {"path": calibration.path, "frames": len(frames["calibration"])},
                  "evaluation": "calibration frames" if evaluation is None else evaluation.path,
                  "fidelity": report.as_dict()}
        _finish(partial, model, output, record)
    finally:
        for leftover in (partial, f"{partial}.data"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return report
