// Per-output-pixel maths of the YUV 4:2:0 -> RGB conversion, __host__ __device__
// so the host emulation used by the CPU tests runs exactly this code.
//
// Resampling follows OpenCV's resize on float32 images, which is what the CPU
// path (vqa_rt.runtime.color) calls: coordinates and weights are computed as
// OpenCV computes them (double, then float), so results agree to float rounding.
#pragma once

#include <cmath>
#include <cstdint>

#include <cuda_fp16.h>

#include "common/hd.h"

namespace vqa {
namespace detail {

enum ResizeMode : int32_t {
    kResizeNone = 0,
    kResizeLinear = 1,      // OpenCV INTER_LINEAR
    kResizeAreaLinear = 2,  // OpenCV INTER_AREA when an axis grows: 2-tap, area-derived weights
    kResizeArea = 3,        // OpenCV INTER_AREA when both axes shrink: box average
};

struct YuvPlan {
    int32_t w = 0, h = 0, cw = 0, ch = 0, ow = 0, oh = 0;
    int64_t y_pitch = 0, uv_pitch = 0;  // bytes
    float y_scale = 0.f, y_bias = 0.f, c_scale = 0.f, c_offset = 0.f;
    float cr_r = 0.f, cb_g = 0.f, cr_g = 0.f, cb_b = 0.f;
    double c_scale_x = 1.0, c_scale_y = 1.0;  // chroma upsampling: source/destination
    double r_scale_x = 1.0, r_scale_y = 1.0;  // final resize: source/destination
    double r_inv_x = 1.0, r_inv_y = 1.0;      // final resize: destination/source
    int32_t mode = kResizeNone;
    float mean[3] = {0.f, 0.f, 0.f};
    float inv_std[3] = {1.f, 1.f, 1.f};
};

// Two source taps and the weight of the second, along one axis, as OpenCV's
// linear resize computes them (area_mode: its INTER_AREA coefficients for
// enlargement; inv_scale is used only then). Out-of-range taps are clamped to the edge (weight 0 on the second).
struct Taps2 {
    int32_t s0, s1;
    float f;
};

VQA_HD Taps2 linear_taps(int32_t d, double scale, double inv_scale, int32_t src, bool area_mode) {
    int32_t s;
    float f;
    if (!area_mode) {
        f = static_cast<float>((d + 0.5) * scale - 0.5);
        s = static_cast<int32_t>(floorf(f));
        f -= static_cast<float>(s);
    } else {
        s = static_cast<int32_t>(floor(d * scale));
        f = static_cast<float>((d + 1) - (s + 1) * inv_scale);
        f = f <= 0.f ? 0.f : f - floorf(f);
    }
    if (s < 0) {
        s = 0;
        f = 0.f;
    }
    if (s >= src - 1) {
        s = src - 1;
        f = 0.f;
    }
    return Taps2{s, s + 1 < src ? s + 1 : s, f};
}

// The source range and weights of one output index under OpenCV's area
// averaging: a partial head tap, full body taps and a partial tail tap.
struct AreaSpan {
    int32_t first, last;  // inclusive source range
    int32_t s1, s2;       // body is [s1, s2)
    float head, body, tail;

    VQA_HD float weight(int32_t s) const { return s < s1 ? head : (s < s2 ? body : tail); }
};

VQA_HD AreaSpan area_span(int32_t d, double scale, int32_t src) {
    const double f1 = d * scale, f2 = f1 + scale;
    const double cell = scale < src - f1 ? scale : src - f1;
    int32_t s1 = static_cast<int32_t>(ceil(f1)), s2 = static_cast<int32_t>(floor(f2));
    s2 = s2 < src - 1 ? s2 : src - 1;
    s1 = s1 < s2 ? s1 : s2;
    AreaSpan a;
    a.s1 = s1;
    a.s2 = s2;
    a.first = (s1 - f1 > 1e-3) ? s1 - 1 : s1;
    a.last = (f2 - s2 > 1e-3) ? s2 : s2 - 1;
    a.head = static_cast<float>((s1 - f1) / cell);
    a.body = static_cast<float>(1.0 / cell);
    const double tail = f2 - s2 < 1.0 ? f2 - s2 : 1.0;
    a.tail = static_cast<float>((tail < cell ? tail : cell) / cell);
    return a;
}

template <typename In>
VQA_HD float load_sample(const In* plane, int64_t pitch, int32_t row, int32_t col) {
    const In* p = reinterpret_cast<const In*>(reinterpret_cast<const char*>(plane) + row * pitch) + col;
#ifdef __CUDA_ARCH__
    return static_cast<float>(__ldg(p));
#else
    return static_cast<float>(*p);
#endif
}

// Clipped RGB of luma-resolution pixel (x, y), before any final resize.
template <typename In>
VQA_HD void rgb_at(const YuvPlan& q, const In* yp, const In* up, const In* vp, int32_t x, int32_t y, float rgb[3]) {
    const float luma = load_sample(yp, q.y_pitch, y, x) * q.y_scale + q.y_bias;
    const Taps2 tx = linear_taps(x, q.c_scale_x, 0.0, q.cw, false);
    const Taps2 ty = linear_taps(y, q.c_scale_y, 0.0, q.ch, false);
    // The chroma terms (Cr' cr_r, Cb' cb_g + Cr' cr_g, Cb' cb_b) at the four
    // chroma samples, interpolated horizontally, then vertically (OpenCV's order).
    float rows[2][3];
    const int32_t cy[2] = {ty.s0, ty.s1};
    for (int r = 0; r < 2; ++r) {
        float terms[2][3];
        const int32_t cx[2] = {tx.s0, tx.s1};
        for (int c = 0; c < 2; ++c) {
            const float cb = (load_sample(up, q.uv_pitch, cy[r], cx[c]) - q.c_offset) * q.c_scale;
            const float cr = (load_sample(vp, q.uv_pitch, cy[r], cx[c]) - q.c_offset) * q.c_scale;
            terms[c][0] = cr * q.cr_r;
            terms[c][1] = cb * q.cb_g + cr * q.cr_g;
            terms[c][2] = cb * q.cb_b;
        }
        for (int k = 0; k < 3; ++k) rows[r][k] = terms[0][k] * (1.f - tx.f) + terms[1][k] * tx.f;
    }
    for (int k = 0; k < 3; ++k) {
        const float v = rows[0][k] * (1.f - ty.f) + rows[1][k] * ty.f + luma;
        rgb[k] = fminf(fmaxf(v, 0.f), 1.f);
    }
}

// Normalised RGB of output pixel (ox, oy).
template <typename In, int Mode>
VQA_HD void output_pixel(const YuvPlan& q, const In* yp, const In* up, const In* vp, int32_t ox, int32_t oy,
                         float out[3]) {
    float acc[3] = {0.f, 0.f, 0.f};
    if (Mode == kResizeNone) {
        rgb_at(q, yp, up, vp, ox, oy, acc);
    } else if (Mode == kResizeLinear || Mode == kResizeAreaLinear) {
        const bool area = Mode == kResizeAreaLinear;
        const Taps2 tx = linear_taps(ox, q.r_scale_x, q.r_inv_x, q.w, area);
        const Taps2 ty = linear_taps(oy, q.r_scale_y, q.r_inv_y, q.h, area);
        float p00[3], p01[3], p10[3], p11[3];
        rgb_at(q, yp, up, vp, tx.s0, ty.s0, p00);
        rgb_at(q, yp, up, vp, tx.s1, ty.s0, p01);
        rgb_at(q, yp, up, vp, tx.s0, ty.s1, p10);
        rgb_at(q, yp, up, vp, tx.s1, ty.s1, p11);
        for (int k = 0; k < 3; ++k) {
            const float top = p00[k] * (1.f - tx.f) + p01[k] * tx.f;
            const float bottom = p10[k] * (1.f - tx.f) + p11[k] * tx.f;
            acc[k] = top * (1.f - ty.f) + bottom * ty.f;
        }
    } else {
        const AreaSpan sx = area_span(ox, q.r_scale_x, q.w);
        const AreaSpan sy = area_span(oy, q.r_scale_y, q.h);
        for (int32_t y = sy.first; y <= sy.last; ++y) {
            float row[3] = {0.f, 0.f, 0.f};
            for (int32_t x = sx.first; x <= sx.last; ++x) {
                float p[3];
                rgb_at(q, yp, up, vp, x, y, p);
                const float wx = sx.weight(x);
                for (int k = 0; k < 3; ++k) row[k] += p[k] * wx;
            }
            const float wy = sy.weight(y);
            for (int k = 0; k < 3; ++k) acc[k] += row[k] * wy;
        }
    }
    for (int k = 0; k < 3; ++k) out[k] = (acc[k] - q.mean[k]) * q.inv_std[k];
}

VQA_HD void store_out(float* out, int64_t i, float v) { out[i] = v; }
VQA_HD void store_out(__half* out, int64_t i, float v) { out[i] = __float2half_rn(v); }

}  // namespace detail
}  // namespace vqa
