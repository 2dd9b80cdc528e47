// Host-side planning shared by the launcher and the host emulation: the GEMM
// description from the convolution parameters, and the split-K choice.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "deform_conv.h"
#include "deform_conv_tiles.cuh"

namespace vqa {
namespace detail {

// Geometry only; pointers, splits and m_blocks are filled in by the caller.
template <typename T>
DeformGemm<T> make_gemm(const DeformConvParams& p) {
    DeformGemm<T> g;
    g.C = p.in_channels;
    g.H = p.in_height;
    g.W = p.in_width;
    g.OC = p.out_channels;
    g.kw = p.kernel_w;
    g.ow = p.out_width;
    g.stride_h = p.stride_h;
    g.stride_w = p.stride_w;
    g.pad_top = p.pad_top;
    g.pad_left = p.pad_left;
    g.dilation_h = p.dilation_h;
    g.dilation_w = p.dilation_w;
    g.offset_group = p.offset_group;
    g.cg = p.in_channels / p.group;
    g.ocg = p.out_channels / p.group;
    g.cpog = p.in_channels / p.offset_group;
    g.taps = p.kernel_h * p.kernel_w;
    g.K = g.cg * g.taps;
    g.ohw = p.out_height * p.out_width;
    g.n_cols = p.batch * g.ohw;
    g.out_elems = static_cast<int64_t>(g.n_cols) * p.out_channels;
    return g;
}

// Splits K across blocks when the output tiles alone would leave the GPU idle:
// aims at about two blocks per SM, keeps at least min_steps K-steps per split,
// and fits the partial sums into scratch_bytes. Sets m_blocks, splits and
// k_per_split (a multiple of bk; every split gets a non-empty K range).
template <typename T>
void plan_splits(DeformGemm<T>& g, int block_m, int bn, int bk, int sms, int32_t max_splits, int32_t min_steps,
                 size_t scratch_bytes) {
    g.m_blocks = (g.ocg + block_m - 1) / block_m;
    const int64_t tiles = static_cast<int64_t>((g.n_cols + bn - 1) / bn) * g.m_blocks * (g.OC / g.ocg);
    const int32_t k_steps = (g.K + bk - 1) / bk;
    const int64_t target = 2 * static_cast<int64_t>(std::max(sms, 1));
    int64_t splits = tiles < target ? (target + tiles - 1) / tiles : 1;
    splits = std::min<int64_t>(splits, std::max<int32_t>(1, k_steps / min_steps));
    splits = std::min<int64_t>(splits, max_splits);
    const size_t per_split = static_cast<size_t>(g.out_elems) * sizeof(float);
    splits = std::min<int64_t>(splits, static_cast<int64_t>(per_split ? scratch_bytes / per_split : 1));
    if (splits < 2) splits = 1;
    const int32_t steps_per_split = static_cast<int32_t>((k_steps + splits - 1) / splits);
    g.k_per_split = steps_per_split * bk;
    g.splits = (g.K + g.k_per_split - 1) / g.k_per_split;
}

}  // namespace detail
}  // namespace vqa
