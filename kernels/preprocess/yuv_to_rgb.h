// Planar YUV 4:2:0 -> normalised planar RGB in one pass, with an optional resize.
// Host API; knows nothing of TensorRT.
//
// The maths is that of vqa_rt.runtime.frames.color.yuv_to_rgb followed by normalize():
//   Y' = Y*y_scale - y_offset*y_scale, Cb' = (U - c_offset)*c_scale (likewise Cr'),
//   codes mapped by range (limited: 16..235 / 16..240 at 8 bit, scaled by
//   2^(bit_depth-8); full: 0..2^bit_depth-1) to Y' in [0, 1], Cb'/Cr' in [-0.5, 0.5];
//   R = Y' + 2(1-Kr) Cr', G = Y' - ..., B = Y' + 2(1-Kb) Cb' (BT.709 or BT.601 Kr/Kb);
//   chroma treated as centre-sited, upsampled to luma size exactly like OpenCV's
//   INTER_LINEAR (half-pixel centres, edge replicated); each channel clipped to
//   [0, 1]; then resized to out_width x out_height the way the CPU path does it
//   with OpenCV: INTER_LINEAR when the output has at least as many pixels,
//   INTER_AREA when it has fewer (OpenCV's area averaging when both axes shrink,
//   its area-weighted 2-tap filter when one axis grows); finally (v - mean[c]) / std[c].
//
// Input samples: uint8 for bit_depth 8, uint16 (little-endian, as read) for
// 9..16. Chroma planes are ((width+1)/2) x ((height+1)/2). Output: 3 planes of
// out_height x out_width float32 or float16, contiguous.
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

#include "common/dtype.h"

namespace vqa {

enum class ColorMatrix : int32_t { kBT709 = 0, kBT601 = 1 };
enum class ColorRange : int32_t { kLimited = 0, kFull = 1 };

struct YuvToRgbParams {
    int32_t width = 0, height = 0;  // luma size
    int32_t bit_depth = 8;
    int64_t y_pitch = 0;   // bytes from one luma row to the next; 0: packed
    int64_t uv_pitch = 0;  // bytes from one chroma row to the next (U and V alike); 0: packed
    ColorMatrix matrix = ColorMatrix::kBT709;
    ColorRange range = ColorRange::kLimited;
    int32_t out_width = 0, out_height = 0;  // 0, 0: no resize
    float mean[3] = {0.f, 0.f, 0.f};
    float std[3] = {1.f, 1.f, 1.f};
    DType out_dtype = DType::kFloat32;
};

// Empty when valid, else what is wrong.
std::string yuv420_to_rgb_check(const YuvToRgbParams& p);

// Enqueues the conversion of one frame on `stream` (device pointers).
cudaError_t yuv420_to_rgb(const YuvToRgbParams& p, const void* y, const void* u, const void* v, void* out,
                          cudaStream_t stream);

}  // namespace vqa
