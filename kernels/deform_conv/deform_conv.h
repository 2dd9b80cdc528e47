// Modulated deformable convolution, forward only, with the semantics of the ONNX
// DeformConv operator (2-D, NCHW). Host API; knows nothing of TensorRT.
//
// For output pixel (i, j) of image n and kernel tap (a, b), input channel c is
// sampled at
//     y = i*stride_h - pad_top  + a*dilation_h + offset[n, og, a, b, 0, i, j]
//     x = j*stride_w - pad_left + b*dilation_w + offset[n, og, a, b, 1, i, j]
// (og = c / (C / offset_group)) by bilinear interpolation in which every corner
// outside the image reads zero, multiplied by mask[n, og, a, b, i, j], and the
// samples are convolved with the weight of the channel's group, plus bias.
//
// Tensors (all contiguous NCHW, all of one element type):
//   x       (N, C, H, W)
//   weight  (OC, C/group, kH, kW)
//   offset  (N, offset_group*kH*kW*2, oH, oW), ordered (group, kH, kW, [dy, dx])
//   mask    (N, offset_group*kH*kW, oH, oW), or null for all ones
//   bias    (OC), or null for zeros
//   y       (N, OC, oH, oW)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include "common/dtype.h"

namespace vqa {

struct DeformConvParams {
    int32_t batch = 0, in_channels = 0, in_height = 0, in_width = 0;
    int32_t out_channels = 0, kernel_h = 0, kernel_w = 0;
    int32_t out_height = 0, out_width = 0;
    int32_t stride_h = 1, stride_w = 1;
    int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int32_t dilation_h = 1, dilation_w = 1;
    int32_t group = 1, offset_group = 1;
};

// Output size along one axis, as ONNX defines it (floor division); may be <= 0.
int64_t deform_conv_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad_begin,
                                int64_t pad_end, int64_t dilation);

// Checks shapes and attributes (positive sizes, divisibility by group and
// offset_group, out_height/out_width equal to the ONNX formula, 32-bit index
// limits). Returns an empty string when valid, else what is wrong.
std::string deform_conv_check(const DeformConvParams& p);

// Bytes of device workspace deform_conv_forward needs (pointer 16-byte aligned):
// a re-ordered copy of the weight plus split-K scratch (at most 16 MiB). The
// value never decreases when any dimension grows (and needs no valid shapes), so
// the size for the largest shapes serves every smaller problem.
size_t deform_conv_workspace_size(const DeformConvParams& p, DType dtype);

// Enqueues the convolution on `stream`. Pointers are device pointers of `dtype`
// elements; `mask` and `bias` may be null. `workspace_bytes` smaller than
// deform_conv_workspace_size() but at least the weight copy still works
// (without split-K). Returns cudaErrorInvalidValue for invalid parameters (see
// deform_conv_check) or too little workspace, else the launch status.
cudaError_t deform_conv_forward(const DeformConvParams& p, DType dtype, const void* x, const void* weight,
                                const void* offset, const void* mask, const void* bias, void* y, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream);

}  // namespace vqa
