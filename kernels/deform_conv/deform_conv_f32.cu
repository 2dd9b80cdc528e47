// FP32 deformable-convolution GEMM: CUDA-core FMAs, 256 threads per block, each
// thread accumulating a (BM/16) x 4 register tile of a BM x 64 output tile.
#include "deform_conv_internal.h"

namespace vqa {
namespace detail {
namespace {

template <int BM>
__global__ void __launch_bounds__(kDeformThreads) deform_gemm_f32(DeformGemm<float> g) {
    constexpr int BN = kDeformBN, BK = kDeformBK, THREADS = kDeformThreads;
    constexpr int TX = 16, TY = THREADS / TX;  // thread grid over the output tile
    constexpr int TM = BM / TY, TN = BN / TX;   // register tile per thread
    static_assert(TM * TY == BM && TN * TX == BN, "tile shape");

    // A tile K-major (as[k][m]), B tile (bs[k][col]).
    __shared__ float as[BK * BM];
    __shared__ float bs[BK * BN];

    const int tid = threadIdx.x;
    const int tx = tid % TX, ty = tid / TX;
    const int32_t col0 = blockIdx.x * BN;
    const int32_t gidx = blockIdx.y / g.m_blocks;
    const int32_t m0 = (blockIdx.y - gidx * g.m_blocks) * BM;
    const int32_t k_begin = blockIdx.z * g.k_per_split;
    const int32_t k_end = min(g.K, k_begin + g.k_per_split);

    ColumnSampler<float> sampler;
    sampler.init(g, col0 + tid % BN);

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    for (int32_t k0 = k_begin; k0 < k_end; k0 += BK) {
        load_a_tile<BK, BM, THREADS>(g, tid, gidx, m0, k0, k_end, as, BM);
        load_b_tile<BK, BN, THREADS>(g, sampler, tid, gidx, k0, k_end, bs, BN);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            // Rows ty + TY*i and columns tx + TX*j: conflict-free shared reads and
            // coalesced output writes.
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = as[kk * BM + ty + TY * i];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = bs[kk * BN + tx + TX * j];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j)
            store_result(g, gidx, m0 + ty + TY * i, col0 + tx + TX * j, static_cast<int32_t>(blockIdx.z), acc[i][j]);
}

}  // namespace

cudaError_t launch_deform_gemm_f32(const DeformGemm<float>& g, int block_m, dim3 grid, cudaStream_t stream) {
    if (block_m == 128) {
        deform_gemm_f32<128><<<grid, kDeformThreads, 0, stream>>>(g);
    } else {
        deform_gemm_f32<64><<<grid, kDeformThreads, 0, stream>>>(g);
    }
    return cudaGetLastError();
}

}  // namespace detail
}  // namespace vqa
