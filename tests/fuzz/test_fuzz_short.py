"""The fuzz harnesses of this folder: a short run of each (no crash in ~30 s from the committed seed corpus),
and the inputs the fuzzers found crashing vqa-rt's parsers, kept as regression tests (these need no atheris).

Long runs: ``make fuzz`` (see RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.engines.metadata import onnx_metadata, read_onnx_metadata, read_plan_sidecar
from vqa_rt.runtime.engines.record import resolve_engine
from vqa_rt.runtime.frames import video
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.frames.video import open_raw
from vqa_rt.runtime.frames.y4m import Y4M_MAGIC, open_y4m
from vqa_rt.runtime.pipeline.job import JobEngines
from vqa_rt.runtime.pipeline.manifest import read_manifest
from vqa_rt.runtime.serve.server import read_job_header

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ("y4m", "raw", "probe", "manifest", "serve", "metadata")
SHORT_RUN_S = 30


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install -e '.[fuzz]'; Linux x86-64 wheels)")
@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run_finds_no_crash(target, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(os.path.join(HERE, "corpus", target), corpus)  # the committed corpus stays as it is
    # libFuzzer reads the peak RSS (getrusage), which a process inherits through fork and exec: a child of this
    # pytest process (torch and models loaded) starts at our peak, so its 2 GB limit counts from there.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    command = [sys.executable, os.path.join(HERE, f"fuzz_{target}.py"), f"-max_total_time={SHORT_RUN_S}",
               "-timeout=10", f"-rss_limit_mb={inherited_mb + 2048}", f"-artifact_prefix={tmp_path}/", str(corpus)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=SHORT_RUN_S + 120)
    assert done.returncode == 0, f"fuzz_{target}.py crashed (inputs in {tmp_path}):\n{done.stderr[-6000:]}"
    assert "Done" in done.stderr


# ------------------------------------------------- inputs the fuzzers found, each once an uncaught exception

def y4m_stream(header: bytes, frames: bytes = b"") -> io.BytesIO:
    stream = io.BytesIO(Y4M_MAGIC + header + b"\n" + frames)
    stream.read(len(Y4M_MAGIC))
    return stream


@pytest.mark.parametrize("size", [None, 100])
def test_y4m_with_absurd_height_is_an_input_error(size):
    # was: ValueError "Maximum allowed dimension exceeded" allocating the frame (fuzz_y4m)
    stream = y4m_stream(b"W2 H266666666666666666666666666 F30000:01 C420p10 XCOLORRANGE=FULL", b"FRAME\n" + bytes(12))
    with pytest.raises(InputError, match="at most 32768, got 2x266666666666666666666666666"):
        with open_y4m(stream, "x.y4m", size, None, None, None, None) as reader:
            list(reader)


def test_raw_with_absurd_width_is_an_input_error():
    # was: MemoryError "Unable to allocate 37.5 GiB" for the frame of a raw stream (fuzz_raw)
    with pytest.raises(InputError, match="at most 32768, got 209715200x2"):
        open_raw(io.BytesIO(bytes(20)), "x.yuv", None, 200 << 20, 2, "yuv420p", b"", None)


def test_a_frame_that_does_not_fit_in_memory_is_an_input_error(monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate")

    reader = open_raw(io.BytesIO(bytes(64)), "x.yuv", None, 32768, 32768, "yuv420p10le", b"", None)
    monkeypatch.setattr(video.np, "empty", no_memory)
    with pytest.raises(InputError, match=r"x.yuv: a 32768x32768 yuv420p10le frame \(3221225472 bytes\) does not fit"):
        list(reader)


def test_raw_frames_smaller_than_the_detection_head(tmp_path):
    # was: ValueError "could not broadcast input array from shape (10,) into shape (6,)": open_video reads
    # 10 bytes to tell Y4M from raw, more than one 2x2 frame (fuzz_raw)
    path = tmp_path / "tiny.bin"
    path.write_bytes(bytes(range(18)))
    with open_video(str(path), 2, 2) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == [0, 1, 2]
    assert np.concatenate([np.concatenate([f.y.ravel(), f.u.ravel(), f.v.ravel()]) for f in frames]).tolist() \
        == list(range(18))


@pytest.mark.parametrize("width", ["²", "9" * 5000])
def test_manifest_width_that_int_refuses_is_an_input_error(tmp_path, width):
    # was: ValueError from int(): '²' is a digit to str.isdigit; 5000 digits exceed int()'s limit (review)
    path = tmp_path / "m.csv"
    path.write_text(f"reference,distorted,width,height\na.yuv,b.yuv,{width},2\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: width .* is not a positive whole number"):
        read_manifest(str(path))


@pytest.mark.parametrize("line, message", [
    (b"[" * 5000 + b"\n", "nests JSON arrays or objects too deeply"),  # was RecursionError
    (b'{"engines": ["fr"], "width": 2, "height": 2, "fps": ' + b"1" * 5000 + b"}\n", "not valid JSON"),  # ValueError
    (b'{"engines": ["fr"], "width": 2, "height": 2, "fps": 1e999}\n', '"fps" must be a positive finite number'),
])
def test_serve_job_headers_that_crashed_are_input_errors(line, message):
    # was: RecursionError, ValueError (int digits limit) and OverflowError (Fraction(inf)) (review of the
    # serve harness's target; the server answered "internal error")
    with pytest.raises(InputError, match=message):
        read_job_header(line, JobEngines(fr="psnr"))


SIDECAR = {"format": "vqa-rt-plan", "format_version": 2,
           "metadata": {"kind": "fr", "inputs": ["reference", "distorted"], "outputs": ["score"],
                        "preprocess": {}, "score_scale": {}}}


@pytest.mark.parametrize("sidecar, message", [
    (b'{"format": "vqa-rt-plan", \x92}', "cannot read the plan's sidecar"),  # was UnicodeDecodeError (fuzz)
    (b"[" * 100000, "cannot read the plan's sidecar"),  # was RecursionError
    (b'{"n": ' + b"1" * 5000 + b"}", "cannot read the plan's sidecar"),  # was ValueError (int digits limit)
    (json.dumps({**SIDECAR, "metadata": {**SIDECAR["metadata"], "min_size": float("inf")}}).encode(),
     "incomplete vqa-rt metadata"),  # was OverflowError: int(Infinity)
    (json.dumps({**SIDECAR, "metadata": {**SIDECAR["metadata"], "preprocess": {"sampling": {"fvame_stride": 2}}}})
     .encode(), "bad frame sampling"),  # was TypeError from EngineSampling(**sampling) (fuzz_metadata)
    (json.dumps({**SIDECAR, "metadata": {**SIDECAR["metadata"], "preprocess": {"sampling": [2]}}}).encode(),
     "bad frame sampling"),
])
def test_plan_sidecars_that_crashed_are_model_errors(tmp_path, sidecar, message):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"")
    (tmp_path / "m.plan.json").write_bytes(sidecar)
    with pytest.raises(ModelError, match=message):
        read_plan_sidecar(str(plan))
        resolve_engine(str(plan))


def onnx_bytes(props: dict[str, str]) -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
    helper.set_model_props(model, props)
    return model.SerializeToString()


def test_onnx_metadata_key_that_is_not_utf8_is_a_model_error(tmp_path):
    # was: TypeError "startswith first arg must be bytes": protobuf gives bytes for a non-UTF-8 key (fuzz_metadata)
    import onnx

    data = onnx_bytes({"vqa_rt.kind": '"fr"'}).replace(b"vqa_rt.kind", b"vqa_rt.\xffind")
    with pytest.raises(ModelError, match="metadata key .* is not UTF-8 text"):
        onnx_metadata(onnx.ModelProto.FromString(data), "m.onnx")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError, match="is not UTF-8 text"):
        read_onnx_metadata(str(path))


def test_onnx_metadata_value_nested_too_deeply_is_a_model_error():
    import onnx

    proto = onnx.ModelProto.FromString(onnx_bytes({"vqa_rt.kind": "[" * 100000}))
    with pytest.raises(ModelError, match="'vqa_rt.kind' is not valid JSON"):  # was RecursionError
        onnx_metadata(proto, "m.onnx")


def test_committed_corpus_is_small():
    sizes = [os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(os.path.join(HERE, "corpus"))
             for name in names]
    assert sorted(os.listdir(os.path.join(HERE, "corpus"))) == sorted(TARGETS) and sum(sizes) < 1 << 20
