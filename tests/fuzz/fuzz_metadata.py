"""Fuzz the readers of a model file's vqa-rt metadata (``vqa_rt.runtime.engines.metadata``) and the engine
record made from it (``vqa_rt.runtime.engines.record.resolve_engine``).

Input: one selector byte, then a file. Even selector: the file is a TensorRT plan's sidecar JSON
(``read_plan_sidecar``, then ``resolve_engine`` on the plan); odd: an ONNX model (``onnx_metadata`` on the
parsed proto, ``_onnx_file_metadata`` / ``read_onnx_metadata``, then ``resolve_engine`` on the file). Bits 1-2
choose the kinds asked for (any model, FR, FR/NR/baseline, QP map); the engine's default frame sampling
is read too.
"""

from __future__ import annotations

import os
import sys

import atheris
from _fuzz_common import INSTRUMENT, main, scratch_dir, write

with atheris.instrument_imports(include=INSTRUMENT):
    import onnx

    from vqa_rt.errors import VqaRtError
    from vqa_rt.runtime.engines import metadata
    from vqa_rt.runtime.engines.record import resolve_engine

KINDS = (None, ("fr",), ("fr", "nr", "baseline"), ("qpmap",))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0], data[1:]
    kinds = KINDS[(selector >> 1) % len(KINDS)]
    try:
        if selector % 2 == 0:
            plan = write(os.path.join(scratch_dir(), "model.plan"), b"")
            write(metadata.plan_sidecar_path(plan), body)
            metadata.read_plan_sidecar(plan)
            engine = resolve_engine(plan, kinds)
        else:
            try:
                proto = onnx.ModelProto.FromString(body)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError and others: not vqa-rt's parser
                proto = None
            if proto is not None:
                metadata.onnx_metadata(proto, "fuzz.onnx")
            path = write(os.path.join(scratch_dir(), "model.onnx"), body)
            metadata._onnx_file_metadata.cache_clear()  # the file changes under the same name
            engine = resolve_engine(path, kinds)
        engine.default_sampling  # noqa: B018 - EngineSampling(**metadata's sampling) checks it
    except VqaRtError:
        pass


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
