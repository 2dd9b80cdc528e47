// FP16 deformable-convolution GEMM on tensor cores (WMMA 16x16x16, half inputs,
// float accumulation). 8 warps per block; each warp owns a (BM/4) x 32 piece of
// the BM x 64 output tile. Sampling is done in float and rounded to half once,
// when the sample is stored into the B tile.
#include <mma.h>

#include "deform_conv_internal.h"

namespace vqa {
namespace detail {
namespace {

namespace wmma = nvcuda::wmma;

template <int BM>
struct F16Tile {
    static constexpr int BN = kDeformBN, BK = kDeformBK, THREADS = kDeformThreads;
    static constexpr int WARPS_M = 4, WARPS_N = 2;
    static constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N;  // warp tile
    static constexpr int FM = WTM / 16, FN = WTN / 16;           // fragments per warp
    // Padded leading dimensions (multiples of 8 halves / 4 floats, 32-byte aligned rows).
    static constexpr int LDA = BM + 8, LDB = BN + 8, LDC = BN + 4;
    static_assert(WARPS_M * WARPS_N * 32 == THREADS, "warp layout");
    static_assert(FM * 16 == WTM && FN * 16 == WTN && BK % 16 == 0, "fragment layout");

    struct Operands {
        __half a[BK * LDA];  // A tile K-major: a[k * LDA + m] (col_major for WMMA)
        __half b[BK * LDB];  // B tile: b[k * LDB + col] (row_major for WMMA)
    };
    union Shared {
        Operands ops;
        float c[BM * LDC];  // accumulators staged for the epilogue
    };
};

template <int BM>
__global__ void __launch_bounds__(kDeformThreads) deform_gemm_f16(DeformGemm<__half> g) {
    using Tile = F16Tile<BM>;
    constexpr int BN = Tile::BN, BK = Tile::BK, THREADS = Tile::THREADS;
    __shared__ __align__(128) typename Tile::Shared smem;

    const int tid = threadIdx.x;
    const int warp = tid / 32;
    const int warp_m = warp / Tile::WARPS_N, warp_n = warp % Tile::WARPS_N;
    const int32_t col0 = blockIdx.x * BN;
    const int32_t gidx = blockIdx.y / g.m_blocks;
    const int32_t m0 = (blockIdx.y - gidx * g.m_blocks) * BM;
    const int32_t k_begin = blockIdx.z * g.k_per_split;
    const int32_t k_end = min(g.K, k_begin + g.k_per_split);

    ColumnSampler<__half> sampler;
    sampler.init(g, col0 + tid % BN);

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[Tile::FM][Tile::FN];
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
        for (int j = 0; j < Tile::FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

    for (int32_t k0 = k_begin; k0 < k_end; k0 += BK) {
        load_a_tile<BK, BM, THREADS>(g, tid, gidx, m0, k0, k_end, smem.ops.a, Tile::LDA);
        load_b_tile<BK, BN, THREADS>(g, sampler, tid, gidx, k0, k_end, smem.ops.b, Tile::LDB);
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::col_major> fa[Tile::FM];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb[Tile::FN];
#pragma unroll
            for (int i = 0; i < Tile::FM; ++i)
                wmma::load_matrix_sync(fa[i], smem.ops.a + ks * Tile::LDA + warp_m * Tile::WTM + i * 16, Tile::LDA);
#pragma unroll
            for (int j = 0; j < Tile::FN; ++j)
                wmma::load_matrix_sync(fb[j], smem.ops.b + ks * Tile::LDB + warp_n * Tile::WTN + j * 16, Tile::LDB);
#pragma unroll
            for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
                for (int j = 0; j < Tile::FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }

    // The operand tiles are dead (last __syncthreads above): stage the
    // accumulators in the same shared memory, then write out coalesced.
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
        for (int j = 0; j < Tile::FN; ++j)
            wmma::store_matrix_sync(smem.c + (warp_m * Tile::WTM + i * 16) * Tile::LDC + warp_n * Tile::WTN + j * 16,
                                    acc[i][j], Tile::LDC, wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < BM * BN; e += THREADS) {
        const int mm = e / BN, nn = e - (e / BN) * BN;
        store_result(g, gidx, m0 + mm, col0 + nn, static_cast<int32_t>(blockIdx.z), smem.c[mm * Tile::LDC + nn]);
    }
}

}  // namespace

cudaError_t launch_deform_gemm_f16(const DeformGemm<__half>& g, int block_m, dim3 grid, cudaStream_t stream) {
    if (block_m == 128) {
        deform_gemm_f16<128><<<grid, kDeformThreads, 0, stream>>>(g);
    } else {
        deform_gemm_f16<64><<<grid, kDeformThreads, 0, stream>>>(g);
    }
    return cudaGetLastError();
}

}  // namespace detail
}  // namespace vqa
