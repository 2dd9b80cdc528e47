"""The exported FR ONNX file: structure, metadata, and agreement with PyTorch."""

import dataclasses
import json

import onnx
import pytest
import torch

from vqa_rt.errors import OutputNamesMismatch, OutputValuesMismatch
from vqa_rt.export.models.checkpoint import random_init
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.to_onnx.validate import oracle_session, relative_error, validate_onnx

SPEC = get_spec("fr")


def test_validation_report_covers_two_sizes_within_tolerance(fr_export):
    sizes = [(h, w) for _, h, w in fr_export.report.max_rel_error]
    assert sizes == list(SPEC.validation_sizes)
    assert any(h % 32 or w % 32 for h, w in sizes), "one validation size must not be a multiple of 32"
    for errors in fr_export.report.max_rel_error.values():
        assert set(errors) == set(SPEC.output_names)
        assert max(errors.values()) <= 1e-4


@pytest.mark.parametrize("height, width", [(136, 232), (270, 480)])
def test_onnxruntime_matches_pytorch_on_fresh_inputs(fr_export, height, width):
    generator = torch.Generator().manual_seed(height)
    inputs = [torch.randn(2, 3, height, width, generator=generator) for _ in SPEC.input_names]
    with torch.no_grad():
        expected = [t.numpy() for t in fr_export.loaded.model(*inputs)]
    actual = oracle_session(fr_export.path).run(None, {n: t.numpy() for n, t in zip(SPEC.input_names, inputs)})
    for got, want in zip(actual, expected):
        assert got.shape == (2,)
        assert relative_error(got, want) <= 1e-4


def test_graph_uses_standard_deformconv_and_dynamic_axes(fr_export):
    model = onnx.load(fr_export.path)
    deform = [n for n in model.graph.node if n.op_type == "DeformConv"]
    assert len(deform) == len(fr_export.loaded.config.fusion_stages)
    assert all(len(n.input) == 5 and n.input[4] for n in deform)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
        assert dims[1].dim_value == 3


def test_metadata_describes_the_model(fr_export):
    metadata = {p.key: json.loads(p.value) for p in onnx.load(fr_export.path).metadata_props}
    assert metadata["vqa_rt.kind"] == "fr"
    assert metadata["vqa_rt.inputs"] == ["ref", "dist", "ref_prev", "dist_prev"]
    assert metadata["vqa_rt.outputs"] == ["score", "spatial", "temporal"]
    assert metadata["vqa_rt.preprocess"]["layout"] == "NCHW" and metadata["vqa_rt.preprocess"]["color"] == "RGB"
    assert metadata["vqa_rt.score_scale"] == {"name": "DCR", "min": 1.0, "max": 7.0, "higher_is_better": True}
    assert metadata["vqa_rt.untrained"] is True
    assert metadata["vqa_rt.config"]["fusion_stages"] == [2, 3, 4]
    assert metadata["vqa_rt.version"]


def test_validation_fails_with_typed_errors(fr_export):
    other = random_init(SPEC, seed=1)
    with pytest.raises(OutputValuesMismatch, match="differs from PyTorch"):
        validate_onnx(SPEC, other, fr_export.path)
    renamed = dataclasses.replace(SPEC, output_names=("quality", "spatial", "temporal"))
    with pytest.raises(OutputNamesMismatch, match="expected \\['quality'"):
        validate_onnx(renamed, fr_export.loaded, fr_export.path)
