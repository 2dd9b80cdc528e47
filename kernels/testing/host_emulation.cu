// Host emulation of the deform-conv GEMM and the YUV conversion (see host_emulation.h).
#include "host_emulation.h"

#include <vector>

#include "capi/params.h"
#include "deform_conv/deform_conv_internal.h"
#include "deform_conv/deform_conv_plan.h"
#include "preprocess/yuv_to_rgb_internal.h"

namespace {

using namespace vqa::detail;

// One block of the GEMM grid, thread by thread, stage by stage, as the kernels do.
template <typename T>
void emulate_block(const DeformGemm<T>& g, int block_m, int32_t bx, int32_t by, int32_t bz,
                   std::vector<ColumnSampler<T>>& samplers) {
    constexpr int BN = kDeformBN, BK = kDeformBK, THREADS = kDeformThreads;
    const int32_t col0 = bx * BN;
    const int32_t gidx = by / g.m_blocks;
    const int32_t m0 = (by - gidx * g.m_blocks) * block_m;
    const int32_t k_begin = bz * g.k_per_split;
    const int32_t k_end = std::min(g.K, k_begin + g.k_per_split);
    for (int tid = 0; tid < THREADS; ++tid) samplers[tid].init(g, col0 + tid % BN);
    std::vector<float> acc(static_cast<size_t>(block_m) * BN, 0.f);
    std::vector<T> as(static_cast<size_t>(BK) * block_m), bs(static_cast<size_t>(BK) * BN);
    for (int32_t k0 = k_begin; k0 < k_end; k0 += BK) {
        for (int tid = 0; tid < THREADS; ++tid) {
            if (block_m == 128) {
                load_a_tile<BK, 128, THREADS>(g, tid, gidx, m0, k0, k_end, as.data(), block_m);
            } else {
                load_a_tile<BK, 64, THREADS>(g, tid, gidx, m0, k0, k_end, as.data(), block_m);
            }
            load_b_tile<BK, BN, THREADS>(g, samplers[tid], tid, gidx, k0, k_end, bs.data(), BN);
        }
        for (int m = 0; m < block_m; ++m)
            for (int n = 0; n < BN; ++n) {
                float sum = acc[m * BN + n];
                for (int kk = 0; kk < BK; ++kk) sum += to_float(as[kk * block_m + m]) * to_float(bs[kk * BN + n]);
                acc[m * BN + n] = sum;
            }
    }
    for (int m = 0; m < block_m; ++m)
        for (int n = 0; n < BN; ++n) store_result(g, gidx, m0 + m, col0 + n, bz, acc[m * BN + n]);
}

template <typename T>
int32_t emulate_deform_conv(const vqa::DeformConvParams& p, const void* x, const void* weight, const void* offset,
                            const void* mask, const void* bias, void* y, int sm_count) {
    DeformGemm<T> g = make_gemm<T>(p);
    std::vector<T> wt(static_cast<size_t>(p.out_channels) * g.K);
    for (int64_t e = 0; e < static_cast<int64_t>(wt.size()); ++e)
        reorder_weight_element(static_cast<const T*>(weight), wt.data(), g.cg, g.taps, g.ocg, e);
    const int block_m = deform_block_m(g.ocg);
    plan_splits(g, block_m, kDeformBN, kDeformBK, sm_count, kMaxSplits, kMinKStepsPerSplit, kSplitScratchBytes);
    std::vector<float> partial(g.splits > 1 ? static_cast<size_t>(g.splits * g.out_elems) : 0);
    g.x = static_cast<const T*>(x);
    g.offset = static_cast<const T*>(offset);
    g.mask = static_cast<const T*>(mask);
    g.bias = static_cast<const T*>(bias);
    g.y = static_cast<T*>(y);
    g.wt = wt.data();
    g.partial = partial.empty() ? nullptr : partial.data();
    std::vector<ColumnSampler<T>> samplers(kDeformThreads);
    const int32_t grid_x = (g.n_cols + kDeformBN - 1) / kDeformBN;
    for (int32_t bz = 0; bz < g.splits; ++bz)
        for (int32_t by = 0; by < g.m_blocks * p.group; ++by)
            for (int32_t bx = 0; bx < grid_x; ++bx) emulate_block(g, block_m, bx, by, bz, samplers);
    if (g.splits > 1)
        for (int64_t i = 0; i < g.out_elems; ++i) reduce_element(g, i);
    return g.splits;
}

template <typename In, typename Out, int Mode>
void emulate_yuv(const YuvPlan& q, const void* y, const void* u, const void* v, void* out) {
    const int64_t plane = static_cast<int64_t>(q.ow) * q.oh;
    for (int32_t oy = 0; oy < q.oh; ++oy)
        for (int32_t ox = 0; ox < q.ow; ++ox) {
            float rgb[3];
            output_pixel<In, Mode>(q, static_cast<const In*>(y), static_cast<const In*>(u),
                                   static_cast<const In*>(v), ox, oy, rgb);
            for (int k = 0; k < 3; ++k) store_out(static_cast<Out*>(out), k * plane + oy * q.ow + ox, rgb[k]);
        }
}

template <typename In, typename Out>
void emulate_yuv_mode(const YuvPlan& q, const void* y, const void* u, const void* v, void* out) {
    switch (q.mode) {
        case kResizeNone: emulate_yuv<In, Out, kResizeNone>(q, y, u, v, out); break;
        case kResizeLinear: emulate_yuv<In, Out, kResizeLinear>(q, y, u, v, out); break;
        case kResizeAreaLinear: emulate_yuv<In, Out, kResizeAreaLinear>(q, y, u, v, out); break;
        default: emulate_yuv<In, Out, kResizeArea>(q, y, u, v, out); break;
    }
}

}  // namespace

extern "C" {

int32_t vqa_emulate_deform_conv_forward(const vqa_deform_conv_params* params, int32_t dtype, const void* x,
                                        const void* weight, const void* offset, const void* mask, const void* bias,
                                        void* y, int32_t sm_count, int32_t* splits) {
    if (!params || !x || !weight || !offset || !y) return VQA_ERROR_INVALID_ARGUMENT;
    const vqa::DeformConvParams p = vqa::capi::to_deform_conv_params(*params);
    if (!vqa::deform_conv_check(p).empty()) return VQA_ERROR_INVALID_ARGUMENT;
    int32_t used = 0;
    if (dtype == VQA_DTYPE_FLOAT32) {
        used = emulate_deform_conv<float>(p, x, weight, offset, mask, bias, y, sm_count);
    } else if (dtype == VQA_DTYPE_FLOAT16) {
        used = emulate_deform_conv<__half>(p, x, weight, offset, mask, bias, y, sm_count);
    } else {
        return VQA_ERROR_INVALID_ARGUMENT;
    }
    if (splits) *splits = used;
    return VQA_OK;
}

int32_t vqa_emulate_yuv420_to_rgb(const vqa_yuv_to_rgb_params* params, const void* y, const void* u, const void* v,
                                  void* out) {
    if (!params || !y || !u || !v || !out) return VQA_ERROR_INVALID_ARGUMENT;
    const vqa::YuvToRgbParams p = vqa::capi::to_yuv_params(*params);
    if (!vqa::yuv420_to_rgb_check(p).empty()) return VQA_ERROR_INVALID_ARGUMENT;
    const YuvPlan q = make_yuv_plan(p);
    const bool wide = p.bit_depth > 8;
    if (p.out_dtype == vqa::DType::kFloat16) {
        wide ? emulate_yuv_mode<uint16_t, __half>(q, y, u, v, out) : emulate_yuv_mode<uint8_t, __half>(q, y, u, v, out);
    } else {
        wide ? emulate_yuv_mode<uint16_t, float>(q, y, u, v, out) : emulate_yuv_mode<uint8_t, float>(q, y, u, v, out);
    }
    return VQA_OK;
}

}  // extern "C"
