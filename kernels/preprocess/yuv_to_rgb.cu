// YUV 4:2:0 -> normalised planar RGB: one thread per output pixel.
#include "yuv_to_rgb.h"

#include <sstream>

#include "yuv_to_rgb_internal.h"

namespace vqa {
namespace detail {
namespace {

template <typename In, typename Out, int Mode>
__global__ void yuv420_to_rgb_kernel(YuvPlan q, const In* y, const In* u, const In* v, Out* out) {
    const int32_t ox = blockIdx.x * blockDim.x + threadIdx.x;
    const int32_t oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= q.ow || oy >= q.oh) return;
    float rgb[3];
    output_pixel<In, Mode>(q, y, u, v, ox, oy, rgb);
    const int64_t plane = static_cast<int64_t>(q.ow) * q.oh;
    const int64_t i = static_cast<int64_t>(oy) * q.ow + ox;
    for (int k = 0; k < 3; ++k) store_out(out, k * plane + i, rgb[k]);
}

template <typename In, typename Out>
cudaError_t launch(const YuvPlan& q, const void* y, const void* u, const void* v, void* out, cudaStream_t stream) {
    const dim3 block(32, 8);
    const dim3 grid((q.ow + block.x - 1) / block.x, (q.oh + block.y - 1) / block.y);
    const In* yp = static_cast<const In*>(y);
    const In* up = static_cast<const In*>(u);
    const In* vp = static_cast<const In*>(v);
    Out* o = static_cast<Out*>(out);
    switch (q.mode) {
        case kResizeNone:
            yuv420_to_rgb_kernel<In, Out, kResizeNone><<<grid, block, 0, stream>>>(q, yp, up, vp, o);
            break;
        case kResizeLinear:
            yuv420_to_rgb_kernel<In, Out, kResizeLinear><<<grid, block, 0, stream>>>(q, yp, up, vp, o);
            break;
        case kResizeAreaLinear:
            yuv420_to_rgb_kernel<In, Out, kResizeAreaLinear><<<grid, block, 0, stream>>>(q, yp, up, vp, o);
            break;
        default:
            yuv420_to_rgb_kernel<In, Out, kResizeArea><<<grid, block, 0, stream>>>(q, yp, up, vp, o);
            break;
    }
    return cudaGetLastError();
}

}  // namespace

YuvPlan make_yuv_plan(const YuvToRgbParams& p) {
    YuvPlan q;
    q.w = p.width;
    q.h = p.height;
    q.cw = (p.width + 1) / 2;
    q.ch = (p.height + 1) / 2;
    const bool resize = p.out_width > 0 && (p.out_width != p.width || p.out_height != p.height);
    q.ow = p.out_width > 0 ? p.out_width : p.width;
    q.oh = p.out_width > 0 ? p.out_height : p.height;
    const int64_t bytes = p.bit_depth > 8 ? 2 : 1;
    q.y_pitch = p.y_pitch > 0 ? p.y_pitch : p.width * bytes;
    q.uv_pitch = p.uv_pitch > 0 ? p.uv_pitch : q.cw * bytes;

    // Same constants, computed in double and rounded to float, as runtime/frames/color.py.
    const double kr = p.matrix == ColorMatrix::kBT601 ? 0.299 : 0.2126;
    const double kb = p.matrix == ColorMatrix::kBT601 ? 0.114 : 0.0722;
    const double kg = 1.0 - kr - kb;
    double y_scale, y_offset, c_scale, c_offset;
    if (p.range == ColorRange::kLimited) {
        const double step = static_cast<double>(1 << (p.bit_depth - 8));
        y_scale = 1.0 / (219 * step);
        y_offset = 16.0 * step;
        c_scale = 1.0 / (224 * step);
        c_offset = 128.0 * step;
    } else {
        const double peak = static_cast<double>((1 << p.bit_depth) - 1);
        y_scale = 1.0 / peak;
        y_offset = 0.0;
        c_scale = 1.0 / peak;
        c_offset = static_cast<double>(1 << (p.bit_depth - 1));
    }
    const double cb_b = 2 * (1 - kb), cr_r = 2 * (1 - kr);
    q.y_scale = static_cast<float>(y_scale);
    q.y_bias = static_cast<float>(-y_offset * y_scale);
    q.c_scale = static_cast<float>(c_scale);
    q.c_offset = static_cast<float>(c_offset);
    q.cr_r = static_cast<float>(cr_r);
    q.cb_b = static_cast<float>(cb_b);
    q.cb_g = static_cast<float>(-cb_b * kb / kg);
    q.cr_g = static_cast<float>(-cr_r * kr / kg);

    // OpenCV's resize takes scale = 1 / (dst / src), in double.
    q.c_scale_x = 1.0 / (static_cast<double>(q.w) / q.cw);
    q.c_scale_y = 1.0 / (static_cast<double>(q.h) / q.ch);
    q.r_inv_x = static_cast<double>(q.ow) / q.w;
    q.r_inv_y = static_cast<double>(q.oh) / q.h;
    q.r_scale_x = 1.0 / q.r_inv_x;
    q.r_scale_y = 1.0 / q.r_inv_y;
    if (!resize) {
        q.mode = kResizeNone;
    } else if (static_cast<int64_t>(q.ow) * q.oh >= static_cast<int64_t>(q.w) * q.h) {
        q.mode = kResizeLinear;  // color.py: INTER_LINEAR unless the output has fewer pixels
    } else if (q.r_scale_x >= 1.0 && q.r_scale_y >= 1.0) {
        q.mode = kResizeArea;
    } else {
        q.mode = kResizeAreaLinear;
    }
    for (int k = 0; k < 3; ++k) {
        q.mean[k] = p.mean[k];
        q.inv_std[k] = 1.f / p.std[k];
    }
    return q;
}

}  // namespace detail

std::string yuv420_to_rgb_check(const YuvToRgbParams& p) {
    std::ostringstream why;
    if (p.width <= 0 || p.height <= 0) why << "width and height must be positive; ";
    if (p.bit_depth < 8 || p.bit_depth > 16) why << "bit_depth must be 8..16 (got " << p.bit_depth << "); ";
    if ((p.out_width == 0) != (p.out_height == 0) || p.out_width < 0 || p.out_height < 0)
        why << "out_width and out_height must both be positive, or both 0 for no resize; ";
    const int64_t bytes = p.bit_depth > 8 ? 2 : 1;
    if (p.y_pitch != 0 && p.y_pitch < p.width * bytes) why << "y_pitch smaller than a row; ";
    if (p.uv_pitch != 0 && p.uv_pitch < (p.width + 1) / 2 * bytes) why << "uv_pitch smaller than a chroma row; ";
    if (p.matrix != ColorMatrix::kBT709 && p.matrix != ColorMatrix::kBT601) why << "unknown colour matrix; ";
    if (p.range != ColorRange::kLimited && p.range != ColorRange::kFull) why << "unknown colour range; ";
    if (p.out_dtype != DType::kFloat32 && p.out_dtype != DType::kFloat16) why << "unknown output type; ";
    for (int k = 0; k < 3; ++k) {
        if (!(p.std[k] != 0.f) || !std::isfinite(p.std[k]) || !std::isfinite(p.mean[k]))
            why << "mean must be finite and std finite and non-zero; ";
    }
    const std::string s = why.str();
    return s.empty() ? s : s.substr(0, s.size() - 2);
}

cudaError_t yuv420_to_rgb(const YuvToRgbParams& p, const void* y, const void* u, const void* v, void* out,
                          cudaStream_t stream) {
    if (!yuv420_to_rgb_check(p).empty() || !y || !u || !v || !out) return cudaErrorInvalidValue;
    const detail::YuvPlan q = detail::make_yuv_plan(p);
    const bool wide = p.bit_depth > 8;
    if (p.out_dtype == DType::kFloat16) {
        return wide ? detail::launch<uint16_t, __half>(q, y, u, v, out, stream)
                    : detail::launch<uint8_t, __half>(q, y, u, v, out, stream);
    }
    return wide ? detail::launch<uint16_t, float>(q, y, u, v, out, stream)
                : detail::launch<uint8_t, float>(q, y, u, v, out, stream);
}

}  // namespace vqa
