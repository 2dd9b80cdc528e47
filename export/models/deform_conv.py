"""Modulated deformable convolution with the semantics of the ONNX ``DeformConv`` op.

``deform_conv2d`` is a torch custom op (``vqa_rt::deform_conv2d``) whose eager
implementation is pure PyTorch (one ``grid_sample`` for all kernel taps, then a
grouped matmul). At ONNX export it is translated to the standard ``DeformConv``
node with an explicit mask, which ONNX Runtime (>= 1.25) runs on the CPU and
TensorRT maps to a deformable-conv plugin.

Semantics (ONNX ``DeformConv``, 2-D): for output pixel (i, j) and kernel tap
(a, b) the input is sampled at
``(i*stride_h - pad_top + a*dil_h + off_h, j*stride_w - pad_left + b*dil_w + off_w)``
by bilinear interpolation (taps outside the image read zero), multiplied by the
mask, and convolved with the weight. ``offset`` has shape
``(N, offset_group*kH*kW*2, oH, oW)`` ordered (group, kH, kW, [dy, dx]); ``mask``
has shape ``(N, offset_group*kH*kW, oH, oW)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["deform_conv2d", "DeformConv2d", "ONNX_TRANSLATIONS"]


def _deform_conv2d_reference(
    x: Tensor,
    weight: Tensor,
    offset: Tensor,
    mask: Tensor,
    bias: Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    group: int,
    offset_group: int,
) -> Tensor:
    """Pure-PyTorch implementation (the reference the exported op is checked against), differentiable."""
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    taps = kh * kw
    out_h, out_w = offset.shape[-2:]
    pad_top, pad_left = padding[0], padding[1]

    # Sampling positions in input pixels, shape (N, G, taps, oH, oW).
    offset = offset.reshape(n, offset_group, taps, 2, out_h, out_w)
    rows = torch.arange(out_h, dtype=x.dtype, device=x.device) * stride[0] - pad_top
    cols = torch.arange(out_w, dtype=x.dtype, device=x.device) * stride[1] - pad_left
    tap_rows = (torch.arange(kh, dtype=x.dtype, device=x.device) * dilation[0]).repeat_interleave(kw)
    tap_cols = (torch.arange(kw, dtype=x.dtype, device=x.device) * dilation[1]).repeat(kh)
    pos_y = rows.view(1, 1, 1, out_h, 1) + tap_rows.view(1, 1, taps, 1, 1) + offset[:, :, :, 0]
    pos_x = cols.view(1, 1, 1, 1, out_w) + tap_cols.view(1, 1, taps, 1, 1) + offset[:, :, :, 1]

    # grid_sample with align_corners=False maps pixel p to (2p + 1) / size - 1.
    grid = torch.stack(((2 * pos_x + 1) / width - 1, (2 * pos_y + 1) / height - 1), dim=-1)
    grid = grid.reshape(n * offset_group, taps * out_h, out_w, 2)
    grouped = x.reshape(n * offset_group, channels // offset_group, height, width)
    sampled = F.grid_sample(grouped, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(n, offset_group, channels // offset_group, taps, out_h, out_w)
    sampled = sampled * mask.reshape(n, offset_group, 1, taps, out_h, out_w)

    # Columns (N, group, C/group * taps, oH*oW) times weight (group, oC/group, C/group * taps).
    columns = sampled.reshape(n, group, (channels // group) * taps, out_h * out_w)
    kernel = weight.reshape(group, out_channels // group, (channels // group) * taps)
    out = torch.matmul(kernel.unsqueeze(0), columns).reshape(n, out_channels, out_h, out_w)
    return out + bias.view(1, -1, 1, 1)


# The op is the reference implementation, kept opaque so export writes one ``DeformConv`` node.
_deform_conv2d_op = torch.library.custom_op("vqa_rt::deform_conv2d", mutates_args=())(_deform_conv2d_reference)


def _save_inputs(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:5])
    ctx.attributes = inputs[5:]


def _backward(ctx, grad: Tensor):
    """Gradients of the five tensors through the reference implementation (recomputed: training only)."""
    with torch.enable_grad():
        _, pullback = torch.func.vjp(lambda *tensors: _deform_conv2d_reference(*tensors, *ctx.attributes),
                                     *ctx.saved_tensors)
    return (*pullback(grad), None, None, None, None, None)


_deform_conv2d_op.register_autograd(_backward, setup_context=_save_inputs)


@_deform_conv2d_op.register_fake
def _(x, weight, offset, mask, bias, stride, padding, dilation, group, offset_group):
    return x.new_empty((x.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))


def deform_conv2d(
    x: Tensor,
    weight: Tensor,
    offset: Tensor,
    mask: Tensor,
    bias: Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    group: int = 1,
    offset_group: int = 1,
) -> Tensor:
    """Modulated deformable convolution (ONNX ``DeformConv`` semantics).

    ``padding`` is ``(top, left, bottom, right)`` as in ONNX ``pads``.
    """
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return _deform_conv2d_op(
        x, weight, offset, mask, bias, list(stride), list(padding), list(dilation), group, offset_group
    )


class DeformConv2d(nn.Module):
    """A deformable convolution layer; offsets and mask are inputs of ``forward``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        group: int = 1,
        offset_group: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        if in_channels % group or out_channels % group or in_channels % offset_group:
            raise ValueError("channels must be divisible by group and offset_group")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.group, self.offset_group, self.kernel_size = group, offset_group, kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // group, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    @property
    def offset_channels(self) -> int:
        """Channels of the offset input: offset_group * kH * kW * 2."""
        return self.offset_group * self.kernel_size**2 * 2

    @property
    def mask_channels(self) -> int:
        """Channels of the mask input: offset_group * kH * kW."""
        return self.offset_group * self.kernel_size**2

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        p = self.padding
        return deform_conv2d(
            x,
            self.weight,
            offset,
            mask,
            self.bias,
            stride=(self.stride, self.stride),
            padding=(p, p, p, p),
            dilation=(self.dilation, self.dilation),
            group=self.group,
            offset_group=self.offset_group,
        )


def _onnx_deform_conv(x, weight, offset, mask, bias, stride, padding, dilation, group, offset_group):
    """onnxscript translation: the standard ``DeformConv`` op (opset 19+)."""
    from onnxscript import opset19 as op

    return op.DeformConv(
        x,
        weight,
        offset,
        bias,
        mask,
        dilations=dilation,
        group=group,
        kernel_shape=None,
        offset_group=offset_group,
        pads=padding,
        strides=stride,
    )


ONNX_TRANSLATIONS = {torch.ops.vqa_rt.deform_conv2d.default: _onnx_deform_conv}
