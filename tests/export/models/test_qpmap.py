"""The QP-map model: map geometry, edge padding, ONNX export against PyTorch, metadata, checkpoints."""

import json
import math

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

from vqa_rt.errors import ModelError
from vqa_rt.export.models.checkpoint import load_checkpoint, random_init, save_checkpoint
from vqa_rt.export.models.qpmap import QPMapConfig, QPMapModel
from vqa_rt.export.models.spec import get_spec
from vqa_rt.export.to_onnx.validate import oracle_session, relative_error

SPEC = get_spec("qpmap")


@pytest.fixture(scope="module")
def session(qpmap_export):
    return oracle_session(qpmap_export.path)


def test_validation_covers_two_sizes_one_not_a_multiple_of_16(qpmap_export):
    sizes = [(h, w) for _, h, w in qpmap_export.report.max_rel_error]
    assert sizes == list(SPEC.validation_sizes) and len(sizes) == 2
    assert any(h % 16 or w % 16 for h, w in sizes)
    for errors in qpmap_export.report.max_rel_error.values():
        assert set(errors) == {"qs"} and errors["qs"] <= 1e-4


@pytest.mark.parametrize("height, width", [(64, 96), (72, 104), (50, 146), (16, 16)])
def test_onnx_matches_pytorch_and_covers_the_frame(qpmap_export, session, height, width):
    rgb = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(width))
    with torch.no_grad():
        expected = qpmap_export.loaded.model(rgb).numpy()
    actual = session.run(None, {"rgb": rgb.numpy()})[0]
    assert actual.shape == (2, 1, math.ceil(height / 16), math.ceil(width / 16)) == expected.shape
    assert relative_error(actual, expected) <= 1e-4
    assert np.all(actual > 0)


def test_partial_blocks_see_the_frame_edge_repeated():
    model = random_init(SPEC, seed=2).model
    rgb = torch.rand(1, 3, 40, 56)
    padded = F.pad(rgb, (0, 8, 0, 8), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(model(rgb), model(padded))


def test_map_depends_on_the_content():
    model = random_init(SPEC, seed=0).model
    flat, textured = torch.full((1, 3, 64, 64), 0.5), torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(model(flat), model(textured))


def test_metadata_marks_kind_io_and_untrained(qpmap_export):
    proto = onnx.load(qpmap_export.path)
    metadata = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert metadata["vqa_rt.kind"] == "qpmap"
    assert metadata["vqa_rt.inputs"] == ["rgb"] and metadata["vqa_rt.outputs"] == ["qs"]
    assert metadata["vqa_rt.untrained"] is True
    assert metadata["vqa_rt.preprocess"]["block_size"] == 16
    assert metadata["vqa_rt.config"] == {"widths": [16, 32, 48, 64], "blocks": [0, 1, 1, 2]}
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"] and dims[1].dim_value == 3


def test_random_init_is_seeded():
    first, again, other = (random_init(SPEC, seed=s).model.state_dict() for s in (5, 5, 6))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["head.weight"], other["head.weight"])


def test_checkpoint_round_trip_and_strict_loading(tmp_path):
    config = QPMapConfig(widths=(8, 8, 16, 16), blocks=(0, 1, 0, 1))
    loaded = random_init(SPEC, seed=3, config=config)
    path = str(tmp_path / "qp.pt")
    save_checkpoint(loaded, path, "qpmap")
    reloaded = load_checkpoint(SPEC, path)
    assert reloaded.config == config and reloaded.untrained
    rgb = torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(rgb), loaded.model(rgb))
    state = loaded.model.state_dict()
    del state["head.bias"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ModelError, match="missing keys: head.bias"):
        load_checkpoint(SPEC, str(tmp_path / "partial.pt"), config)


def test_config_needs_four_stages():
    with pytest.raises(ValueError, match="4 entries"):
        QPMapModel(QPMapConfig(widths=(16, 32, 64), blocks=(0, 1, 1)))
