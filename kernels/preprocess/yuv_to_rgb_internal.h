// Internal to kernels/preprocess: the plan shared by the launcher and the host emulation.
#pragma once

#include "yuv_to_rgb.h"
#include "yuv_to_rgb_pixel.cuh"

namespace vqa {
namespace detail {

// Coefficients and resize mode for valid parameters (see yuv420_to_rgb_check).
YuvPlan make_yuv_plan(const YuvToRgbParams& p);

}  // namespace detail
}  // namespace vqa
