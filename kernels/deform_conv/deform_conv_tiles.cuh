// Building blocks of the deformable-convolution implicit GEMM, shared by the FP32
// and FP16 kernels (and by the host emulation used to test the tiling without a
// GPU, which is why they are __host__ __device__ and take the thread index as an
// argument).
//
// The GEMM, per convolution group g:
//   Y[g*ocg + m, col] = sum_k  A[g][k][m] * B[g][k][col]   (+ bias)
// with col = n*oH*oW + p running over every output pixel of every image, and k
// over (tap, input channel of the group) in TAP-MAJOR order, k = tap*cg + c, so a
// thread that walks consecutive k re-uses one tap's sampling position (offset,
// mask, bilinear weights) for many channels. A is the weight re-ordered into that
// order ([group][K][ocg], made by reorder_weight_element); B is never stored in
// global memory: each thread samples its B-tile elements straight from x while
// filling shared memory.
#pragma once

#include <cstdint>

#include <cuda_fp16.h>

#include "common/hd.h"

namespace vqa {
namespace detail {

template <typename T>
struct DeformGemm {
    const T* x = nullptr;       // (N, C, H, W)
    const T* offset = nullptr;  // (N, offset_group*taps*2, oH, oW)
    const T* mask = nullptr;    // (N, offset_group*taps, oH, oW) or null
    const T* wt = nullptr;      // re-ordered weight [group][K][ocg]
    const T* bias = nullptr;    // (OC) or null
    T* y = nullptr;             // (N, OC, oH, oW)
    float* partial = nullptr;   // split-K partial sums [splits][N*OC*oH*oW], when splits > 1

    int32_t C = 0, H = 0, W = 0, OC = 0, kw = 0, ow = 0;
    int32_t stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, dilation_h = 1, dilation_w = 1;
    int32_t offset_group = 1;
    int32_t cg = 0;       // input channels per group
    int32_t ocg = 0;      // output channels per group
    int32_t cpog = 0;     // input channels per offset group
    int32_t taps = 0;     // kH*kW
    int32_t K = 0;        // cg*taps
    int32_t ohw = 0;      // oH*oW
    int32_t n_cols = 0;   // N*oH*oW
    int64_t out_elems = 0;
    int32_t m_blocks = 1;  // blocks along ocg per group
    int32_t splits = 1;
    int32_t k_per_split = 0;  // multiple of the kernel's BK
};

VQA_HD float to_float(float v) { return v; }
VQA_HD float to_float(__half v) { return __half2float(v); }

template <typename T>
VQA_HD T from_float(float v);
template <>
VQA_HD float from_float<float>(float v) { return v; }
template <>
VQA_HD __half from_float<__half>(float v) { return __float2half_rn(v); }

// Read-only load through the non-coherent cache on the device.
template <typename T>
VQA_HD float load_ro(const T* ptr) {
#ifdef __CUDA_ARCH__
    return to_float(__ldg(ptr));
#else
    return to_float(*ptr);
#endif
}

// The sampling state of one B-tile column (one output pixel of one image) for one
// (tap, offset group): up to four in-image corners and their bilinear weights,
// already multiplied by the mask.
template <typename T>
struct ColumnSampler {
    int32_t n = 0, p = 0, oy = 0, ox = 0;
    bool valid = false;
    int32_t idx[4] = {0, 0, 0, 0};  // corner offsets within a channel plane
    float wgt[4] = {0.f, 0.f, 0.f, 0.f};
    uint32_t corners = 0;  // bit i set: corner i is inside the image

    VQA_HD void init(const DeformGemm<T>& g, int32_t col) {
        valid = col < g.n_cols;
        if (!valid) col = 0;
        n = col / g.ohw;
        p = col - n * g.ohw;
        oy = p / g.ow;
        ox = p - oy * g.ow;
    }

    VQA_HD void prepare(const DeformGemm<T>& g, int32_t tap, int32_t og) {
        const int32_t ky = tap / g.kw;
        const int32_t kx = tap - ky * g.kw;
        const int64_t pair = (static_cast<int64_t>(n) * g.offset_group + og) * g.taps + tap;
        const float dy = load_ro(g.offset + (2 * pair) * g.ohw + p);
        const float dx = load_ro(g.offset + (2 * pair + 1) * g.ohw + p);
        const float m = g.mask ? load_ro(g.mask + pair * g.ohw + p) : 1.f;
        const float y = static_cast<float>(oy * g.stride_h - g.pad_top + ky * g.dilation_h) + dy;
        const float x = static_cast<float>(ox * g.stride_w - g.pad_left + kx * g.dilation_w) + dx;
        corners = 0;
        // Also rejects NaN and positions too far away to convert to int.
        if (!(y > -1.f && y < static_cast<float>(g.H) && x > -1.f && x < static_cast<float>(g.W))) return;
        const float y0f = floorf(y), x0f = floorf(x);
        const int32_t y0 = static_cast<int32_t>(y0f), x0 = static_cast<int32_t>(x0f);
        const float ly = y - y0f, lx = x - x0f, hy = 1.f - ly, hx = 1.f - lx;
        const bool top = y0 >= 0, bottom = y0 + 1 < g.H, left = x0 >= 0, right = x0 + 1 < g.W;
        idx[0] = y0 * g.W + x0;
        idx[1] = idx[0] + 1;
        idx[2] = idx[0] + g.W;
        idx[3] = idx[2] + 1;
        wgt[0] = hy * hx * m;
        wgt[1] = hy * lx * m;
        wgt[2] = ly * hx * m;
        wgt[3] = ly * lx * m;
        corners = (top && left ? 1u : 0u) | (top && right ? 2u : 0u) | (bottom && left ? 4u : 0u) |
                  (bottom && right ? 8u : 0u);
    }

    VQA_HD float sample(const T* plane) const {
        float v = 0.f;
        VQA_UNROLL
        for (int i = 0; i < 4; ++i) {
            if (corners & (1u << i)) v += wgt[i] * load_ro(plane + idx[i]);
        }
        return v;
    }
};

// Fills rows [0, BK) of the B tile (BK x BN, row stride ldb) for K range
// [k0, k0 + BK) clipped to k_end. Thread `tid` owns column tid % BN and KPT
// consecutive rows, so it recomputes the sampling position only when its run
// of k crosses into another tap or offset group.
template <int BK, int BN, int THREADS, typename T, typename S>
VQA_HD void load_b_tile(const DeformGemm<T>& g, ColumnSampler<T>& s, int tid, int32_t gidx, int32_t k0,
                        int32_t k_end, S* bs, int ldb) {
    static_assert(THREADS % BN == 0 && (BK * BN) % THREADS == 0, "B tile must divide among the threads");
    constexpr int KPT = BK * BN / THREADS;
    const int col = tid % BN;
    const int row0 = (tid / BN) * KPT;
    int32_t k = k0 + row0;
    const int32_t count = s.valid ? (k_end - k < KPT ? k_end - k : KPT) : 0;
    int32_t tap = 0, c = 0, cglob = 0, og = 0, og_end = 0;
    const int64_t hw = static_cast<int64_t>(g.H) * g.W;
    if (count > 0) {
        tap = k / g.cg;
        c = k - tap * g.cg;
        cglob = gidx * g.cg + c;
        og = cglob / g.cpog;
        og_end = (og + 1) * g.cpog;
        s.prepare(g, tap, og);
    }
    VQA_UNROLL
    for (int i = 0; i < KPT; ++i) {
        float v = 0.f;
        if (i < count) {
            if (i > 0) {
                ++c;
                ++cglob;
                if (c == g.cg) {  // next tap: back to the group's first channel
                    c = 0;
                    ++tap;
                    cglob = gidx * g.cg;
                    og = cglob / g.cpog;
                    og_end = (og + 1) * g.cpog;
                    s.prepare(g, tap, og);
                } else if (cglob == og_end) {  // next offset group, same tap
                    ++og;
                    og_end += g.cpog;
                    s.prepare(g, tap, og);
                }
            }
            v = s.sample(g.x + (static_cast<int64_t>(s.n) * g.C + cglob) * hw);
        }
        bs[(row0 + i) * ldb + col] = from_float<S>(v);
    }
}

// Fills the A tile stored K-major: as[kk * lda + mm] = A[gidx][k0 + kk][m0 + mm],
// zero outside [k0, k_end) x [0, ocg).
template <int BK, int BM, int THREADS, typename T>
VQA_HD void load_a_tile(const DeformGemm<T>& g, int tid, int32_t gidx, int32_t m0, int32_t k0, int32_t k_end,
                        T* as, int lda) {
    const T* wt = g.wt + static_cast<int64_t>(gidx) * g.K * g.ocg;
    for (int i = tid; i < BK * BM; i += THREADS) {
        const int kk = i / BM, mm = i - (i / BM) * BM;
        const int32_t k = k0 + kk, m = m0 + mm;
        as[kk * lda + mm] = (k < k_end && m < g.ocg) ? wt[static_cast<int64_t>(k) * g.ocg + m] : from_float<T>(0.f);
    }
}

// Writes one accumulated GEMM element: into y (with bias) or, with split-K, into
// this split's partial sums.
template <typename T>
VQA_HD void store_result(const DeformGemm<T>& g, int32_t gidx, int32_t m, int32_t col, int32_t split, float acc) {
    if (m >= g.ocg || col >= g.n_cols) return;
    const int32_t n = col / g.ohw, p = col - (col / g.ohw) * g.ohw;
    const int32_t oc = gidx * g.ocg + m;
    const int64_t idx = (static_cast<int64_t>(n) * g.OC + oc) * g.ohw + p;
    if (g.splits > 1) {
        g.partial[static_cast<int64_t>(split) * g.out_elems + idx] = acc;
    } else {
        g.y[idx] = from_float<T>(acc + (g.bias ? to_float(g.bias[oc]) : 0.f));
    }
}

// Sums the split-K partials of output element idx in a fixed order, adds bias.
template <typename T>
VQA_HD void reduce_element(const DeformGemm<T>& g, int64_t idx) {
    const int32_t oc = static_cast<int32_t>((idx / g.ohw) % g.OC);
    float sum = 0.f;
    for (int32_t s = 0; s < g.splits; ++s) sum += g.partial[static_cast<int64_t>(s) * g.out_elems + idx];
    g.y[idx] = from_float<T>(sum + (g.bias ? to_float(g.bias[oc]) : 0.f));
}

// weight (OC, cg, kH, kW) element e -> wt[group][tap*cg + c][m].
template <typename T>
VQA_HD void reorder_weight_element(const T* w, T* wt, int32_t cg, int32_t taps, int32_t ocg, int64_t e) {
    const int64_t K = static_cast<int64_t>(cg) * taps;
    const int64_t o = e / K, r = e - o * K;
    const int64_t c = r / taps, tap = r - c * taps;
    const int64_t gi = o / ocg, m = o - gi * ocg;
    wt[(gi * K + tap * cg + c) * ocg + m] = w[e];
}

}  // namespace detail
}  // namespace vqa
