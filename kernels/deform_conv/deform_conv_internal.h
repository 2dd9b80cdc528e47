// Internal to kernels/deform_conv: tile sizes and the per-precision GEMM launchers.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "deform_conv_tiles.cuh"

namespace vqa {
namespace detail {

constexpr int kDeformBN = 64;        // output pixels per block
constexpr int kDeformBK = 32;        // K per shared-memory stage
constexpr int kDeformThreads = 256;  // threads per block

// Split-K partial sums never take more than kSplitScratchBytes (nor more than
// kMaxSplits whole outputs), which keeps the workspace bound simple and monotonic.
constexpr size_t kSplitScratchBytes = size_t{16} << 20;
constexpr int32_t kMaxSplits = 32;
constexpr int32_t kMinKStepsPerSplit = 4;

// Block height along the output channels of a group: 64, or 128 for wider groups.
inline int deform_block_m(int32_t ocg) { return ocg > 64 ? 128 : 64; }

// grid = (ceil(n_cols / BN), m_blocks * group, splits); g.m_blocks uses block_m.
cudaError_t launch_deform_gemm_f32(const DeformGemm<float>& g, int block_m, dim3 grid, cudaStream_t stream);
cudaError_t launch_deform_gemm_f16(const DeformGemm<__half>& g, int block_m, dim3 grid, cudaStream_t stream);

}  // namespace detail
}  // namespace vqa
