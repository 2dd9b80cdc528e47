"""The PyTorch deformable conv against ONNX's own reference implementation and ONNX Runtime."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx.reference.ops.op_deform_conv import _deform_conv_implementation as onnx_reference

from vqa_rt.export.models.deform_conv import ONNX_TRANSLATIONS, DeformConv2d, deform_conv2d

CASES = [
    # n, c, h, w, out_c, k, stride, pads (t, l, b, r), dilation, group, offset_group
    (2, 4, 7, 9, 6, 3, 1, (1, 1, 1, 1), 1, 2, 2),
    (1, 6, 8, 5, 4, 3, 2, (1, 1, 1, 1), 2, 1, 3),
    (1, 2, 6, 6, 2, 1, 1, (0, 0, 0, 0), 1, 1, 1),
    (1, 3, 9, 7, 2, 3, 1, (2, 0, 1, 1), 1, 1, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_onnx_reference(case):
    n, c, h, w, oc, k, stride, pads, dilation, group, offset_group = case
    generator = torch.Generator().manual_seed(sum(case[:6]))
    out_h = (h + pads[0] + pads[2] - dilation * (k - 1) - 1) // stride + 1
    out_w = (w + pads[1] + pads[3] - dilation * (k - 1) - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=generator)
    weight = torch.randn(oc, c // group, k, k, generator=generator)
    bias = torch.randn(oc, generator=generator)
    # Offsets of a few pixels push many taps partly or wholly outside the image.
    offset = 3 * torch.randn(n, offset_group * k * k * 2, out_h, out_w, generator=generator)
    mask = torch.rand(n, offset_group * k * k, out_h, out_w, generator=generator)

    ours = deform_conv2d(x, weight, offset, mask, bias, (stride, stride), pads, (dilation, dilation), group, offset_group)
    expected = onnx_reference(
        x.double().numpy(), weight.double().numpy(), offset.double().numpy(), bias.double().numpy(),
        mask.double().numpy(), [dilation, dilation], group, [k, k], offset_group, list(pads), [stride, stride],
    )
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_zero_offsets_and_unit_mask_equal_plain_convolution():
    layer = DeformConv2d(4, 5, 3, padding=1)
    x = torch.randn(2, 4, 11, 13)
    offset = torch.zeros(2, layer.offset_channels, 11, 13)
    mask = torch.ones(2, layer.mask_channels, 11, 13)
    expected = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x, offset, mask), expected, rtol=1e-5, atol=1e-5)


class _OffsetsFromInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.deform = DeformConv2d(4, 6, 3, padding=1, group=2, offset_group=2)
        self.predict = torch.nn.Conv2d(4, self.deform.offset_channels + self.deform.mask_channels, 3, padding=1)

    def forward(self, x):
        prediction = self.predict(x)
        split = self.deform.offset_channels
        return self.deform(x, prediction[:, :split], torch.sigmoid(prediction[:, split:]))


def test_exports_as_standard_deformconv_that_onnxruntime_runs(tmp_path):
    torch.manual_seed(0)
    module = _OffsetsFromInput().eval()
    path = str(tmp_path / "deform.onnx")
    batch = torch.export.Dim("batch")
    height, width = (torch.export.Dim(name, min=4) for name in ("height", "width"))
    torch.onnx.export(
        module, (torch.randn(2, 4, 10, 12),), path, dynamo=True, input_names=["x"], output_names=["y"],
        dynamic_shapes={"x": {0: batch, 2: height, 3: width}}, custom_translation_table=ONNX_TRANSLATIONS,
        opset_version=22, verbose=False,
    )
    import onnx

    nodes = [node for node in onnx.load(path).graph.node if node.op_type == "DeformConv"]
    assert len(nodes) == 1 and nodes[0].domain in ("", "ai.onnx")
    assert len(nodes[0].input) == 5 and nodes[0].input[4], "mask must be an explicit input"
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in [(2, 4, 10, 12), (1, 4, 17, 9)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = module(x).numpy()
        np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


def test_gradients_match_finite_differences_for_training():
    """The op trains: its autograd formula (through the reference) against numerical gradients, in float64."""
    torch.manual_seed(0)
    shapes = ((2, 4, 7, 9), (6, 4, 3, 3), (2, 2 * 9 * 2, 7, 9), (2, 2 * 9, 7, 9), (6,))
    tensors = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    tensors[3] = torch.rand(shapes[3], dtype=torch.float64, requires_grad=True)  # mask in [0, 1]

    def layer(x, weight, offset, mask, bias):
        return deform_conv2d(x, weight, offset, mask, bias, (1, 1), (1, 1, 1, 1), (1, 1), 1, 2)

    assert torch.autograd.gradcheck(layer, tensors, eps=1e-6, atol=1e-5)
