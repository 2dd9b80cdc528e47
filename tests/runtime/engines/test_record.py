"""The engine record: a name resolved once into a baseline or a model file with its metadata (and a plan's
sidecar), checked against the kinds a caller takes, before any video is opened."""

from __future__ import annotations

import json

import onnx
import pytest

from vqa_rt.errors import InputError, ModelError
from vqa_rt.runtime.engines.metadata import PLAN_FORMAT, PLAN_FORMAT_VERSION, onnx_metadata
from vqa_rt.runtime.engines.record import BASELINES, resolve_engine
from vqa_rt.runtime.frames.options import EngineSampling

SCORING = ("fr", "nr", "baseline")


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_are_records_without_a_model(name):
    engine = resolve_engine(name, SCORING)
    assert (engine.format, engine.kind, engine.model, engine.column) == ("baseline", "baseline", None, name)
    assert engine.takes_reference and not engine.untrained
    assert engine.default_sampling == EngineSampling(frame_stride=1)


def test_an_onnx_model_carries_its_metadata(fr_export, nr_export):
    fr = resolve_engine(fr_export.path, SCORING)
    metadata = onnx_metadata(onnx.load(fr_export.path, load_external_data=False))
    assert (fr.format, fr.kind, fr.column, fr.sidecar) == ("onnx", "fr", "fr", None)
    assert fr.model.inputs == metadata["inputs"] and fr.model.min_size == metadata["min_size"] == 64
    assert fr.takes_reference and fr.untrained and fr.default_sampling == EngineSampling(frame_stride=1)
    nr = resolve_engine(nr_export.path, SCORING)
    assert not nr.takes_reference and nr.default_sampling == EngineSampling(sample_fps=1.0)


def test_a_plan_is_resolved_from_its_sidecar_once(fr_export, tmp_path):
    plan = tmp_path / "fr.plan"
    plan.write_bytes(b"placeholder bytes, not a TensorRT engine")  # only the sidecar is read
    sidecar = {"format": PLAN_FORMAT, "format_version": PLAN_FORMAT_VERSION, "precision": "fp16",
               "metadata": onnx_metadata(onnx.load(fr_export.path, load_external_data=False))}
    (tmp_path / "fr.plan.json").write_text(json.dumps(sidecar))
    engine = resolve_engine(str(plan), ("fr",))
    assert (engine.format, engine.kind, engine.column, engine.sidecar) == ("plan", "fr", "fr", sidecar)
    assert engine.model == resolve_engine(fr_export.path).model


def test_kinds_a_caller_does_not_take_are_refused(fr_export, qpmap_export):
    with pytest.raises(ModelError, match="is a 'qpmap' model, not a 'fr' model or a 'nr' model"):
        resolve_engine(qpmap_export.path, SCORING)
    with pytest.raises(ModelError, match="is a 'fr' model, not a 'qpmap' model"):
        resolve_engine(fr_export.path, ("qpmap",))
    with pytest.raises(ModelError, match="unknown engine 'psnr'"):  # a baseline where only models go
        resolve_engine("psnr", ("qpmap",))


def test_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ModelError, match="unknown engine 'psnrr'.*or a baseline: psnr, ssim, ms-ssim, vmaf"):
        resolve_engine("psnrr", SCORING)
    with pytest.raises(ModelError, match="no such model file"):
        resolve_engine(str(tmp_path / "none.onnx"), SCORING)
    with pytest.raises(ModelError, match="no such engine file"):
        resolve_engine(str(tmp_path / "none.plan"), SCORING)


def test_frame_size_is_checked_against_the_model_minimum(fr_export):
    engine = resolve_engine(fr_export.path)
    engine.check_frame_size(64, 96)
    with pytest.raises(InputError, match="frames of 48x96 are below the model's minimum of 64 pixels per side"):
        engine.check_frame_size(48, 96)
    resolve_engine("psnr", SCORING).check_frame_size(2, 2)  # baselines check their own minimum
