// C ABI structs -> the launchers' C++ parameter structs.
#pragma once

#include "capi/vqa_kernels.h"
#include "deform_conv/deform_conv.h"
#include "preprocess/yuv_to_rgb.h"

namespace vqa {
namespace capi {

inline DeformConvParams to_deform_conv_params(const vqa_deform_conv_params& c) {
    DeformConvParams p;
    p.batch = c.batch;
    p.in_channels = c.in_channels;
    p.in_height = c.in_height;
    p.in_width = c.in_width;
    p.out_channels = c.out_channels;
    p.kernel_h = c.kernel_h;
    p.kernel_w = c.kernel_w;
    p.out_height = c.out_height;
    p.out_width = c.out_width;
    p.stride_h = c.stride_h;
    p.stride_w = c.stride_w;
    p.pad_top = c.pad_top;
    p.pad_left = c.pad_left;
    p.pad_bottom = c.pad_bottom;
    p.pad_right = c.pad_right;
    p.dilation_h = c.dilation_h;
    p.dilation_w = c.dilation_w;
    p.group = c.group;
    p.offset_group = c.offset_group;
    return p;
}

inline YuvToRgbParams to_yuv_params(const vqa_yuv_to_rgb_params& c) {
    YuvToRgbParams p;
    p.width = c.width;
    p.height = c.height;
    p.bit_depth = c.bit_depth;
    p.y_pitch = c.y_pitch;
    p.uv_pitch = c.uv_pitch;
    p.matrix = static_cast<ColorMatrix>(c.matrix);
    p.range = static_cast<ColorRange>(c.range);
    p.out_width = c.out_width;
    p.out_height = c.out_height;
    p.out_dtype = static_cast<DType>(c.out_dtype);
    for (int k = 0; k < 3; ++k) {
        p.mean[k] = c.mean[k];
        p.std[k] = c.std[k];
    }
    return p;
}

}  // namespace capi
}  // namespace vqa
