"""The FR ladder graph against the one-graph model on ONNX Runtime: each rendition's row equals scoring that pair
alone, on fresh random inputs."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from vqa_rt.errors import ModelError
from vqa_rt.export.onnx_tools.quantize import trunk_convs
from vqa_rt.runtime.engines.ladder_graph import ladder_graph

TOLERANCE = 1e-5  # absolute, on every output (DCR 1..7)


def _session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("weights", ["shipped", "untrained"])
@pytest.mark.parametrize("renditions, height, width", [(1, 64, 96), (3, 96, 128), (5, 72, 136)])
def test_each_rendition_scores_as_its_pair_alone(weights, renditions, height, width, shipped_fr, fr_export):
    path = shipped_fr if weights == "shipped" else fr_export.path
    one, ladder = _session(path), _session(ladder_graph(onnx.load(path)))
    rng = np.random.default_rng(renditions * 1000 + height)
    ref, ref_prev = (rng.standard_normal((1, 3, height, width), dtype=np.float32) for _ in range(2))
    dist, dist_prev = (rng.standard_normal((renditions, 3, height, width), dtype=np.float32) for _ in range(2))
    together = ladder.run(None, {"ref": ref, "ref_prev": ref_prev, "dist": dist, "dist_prev": dist_prev})
    assert [output.shape for output in together] == [(renditions,)] * 3
    for row in range(renditions):
        alone = one.run(None, {"ref": ref, "ref_prev": ref_prev, "dist": dist[row:row + 1],
                               "dist_prev": dist_prev[row:row + 1]})
        for joint, single in zip(together, alone):
            np.testing.assert_allclose(joint[row], single[0], rtol=0, atol=TOLERANCE)


def test_the_reference_share_runs_once(fr_export):
    """The trunk's convolutions stay as they are (one stacked trunk of N + 1 frames); the reference's features reach
    each deformable convolution through an Expand; the convolutions reading a reference/distorted concatenation
    (3 offset predictors, the temporal branch's first) run as two convolutions whose sum broadcasts the
    reference's half; the temporal concatenation, read by nothing else, is gone."""
    source = onnx.load(fr_export.path)
    rewritten = ladder_graph(source)
    added = [node.op_type for node in rewritten.graph.node if node.name.startswith("ladder_")]
    assert sorted(added) == sorted(["Shape", "Concat"] + ["Expand"] * 3 + ["Conv"] * 8 + ["Add"] * 4)
    kept = {node.name for node in rewritten.graph.node}
    removed = [node for node in source.graph.node if node.name not in kept]
    assert sorted(node.op_type for node in removed) == ["Concat"] + ["Conv"] * 4
    assert set(trunk_convs(source)) <= kept
    used = {name for node in rewritten.graph.node for name in node.input}
    assert all(tensor.name in used for tensor in rewritten.graph.initializer)  # the split weights are gone


def test_only_an_fr_graph_is_rewritten(nr_export):
    with pytest.raises(ModelError, match="not an FR graph"):
        ladder_graph(onnx.load(nr_export.path))
