"""The optimisation profile derived from the graph and its metadata, and its errors."""

from __future__ import annotations

import onnx
import pytest

from vqa_rt.errors import EngineBuildError
from vqa_rt.export.onnx_tools.trt_profile import ShapeRange, derive_profile, graph_input_shapes
from vqa_rt.runtime.engines.metadata import onnx_metadata


def test_default_profile_from_the_fr_metadata(fr_export):
    model = onnx.load(fr_export.path, load_external_data=False)
    metadata = onnx_metadata(model)
    profile = derive_profile(graph_input_shapes(model), metadata["dynamic_axes"], min_size=metadata["min_size"])
    assert list(profile) == ["ref", "dist", "ref_prev", "dist_prev"]
    for shapes in profile.values():
        assert (shapes.min, shapes.opt, shapes.max) == ((1, 3, 360, 640), (1, 3, 1080, 1920), (4, 3, 2160, 3840))
    assert profile["ref"].describe() == "[1..1..4]x3x[360..1080..2160]x[640..1920..3840]"
    small = ShapeRange((64, 64), (128, 96), (256, 192), 1, 2, 2)
    assert derive_profile(graph_input_shapes(model), metadata["dynamic_axes"], small)["dist"].opt == (2, 3, 96, 128)


def test_profile_uses_graph_dimension_names_without_metadata():
    shapes = {"rgb": ["batch", 3, "height", "width"]}
    assert derive_profile(shapes, {})["rgb"].max == (4, 3, 2160, 3840)


@pytest.mark.parametrize("shapes, axes, shape_range, min_size, message", [
    ({"x": ["n", 3, "h", "w"]}, {}, ShapeRange(), 1, "dynamic axis 0 \\(n\\).*batch, height, width"),
    ({"x": [None, 3]}, {}, ShapeRange(), 1, "dynamic axis 0 \\(unnamed\\)"),
    ({"x": ["batch", 3, "height", "width"]}, {}, ShapeRange(min_size=(32, 32)), 64, "minimum height 32 is below"),
    ({"x": ["batch"]}, {}, ShapeRange(opt_batch=8), 1, "batch range must satisfy.*1, 8, 4"),
    ({"x": ["batch"]}, {}, ShapeRange(opt_size=(5000, 1080)), 1, "width range"),
])
def test_profile_errors_say_what_is_wrong(shapes, axes, shape_range, min_size, message):
    with pytest.raises(EngineBuildError, match=message):
        derive_profile(shapes, axes, shape_range, min_size)
