// Deformable convolution launcher: validation, workspace layout, weight
// re-ordering, split-K planning and the final split-K reduction.
#include "deform_conv.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <sstream>

#include "deform_conv_internal.h"
#include "deform_conv_plan.h"

namespace vqa {
namespace detail {
namespace {

constexpr size_t kAlign = 256;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

size_t element_size(DType dtype) { return dtype == DType::kFloat16 ? 2 : 4; }

size_t dim(int32_t v) { return v > 0 ? static_cast<size_t>(v) : 0; }

size_t weight_copy_bytes(const DeformConvParams& p, DType dtype) {
    const size_t elems = dim(p.out_channels) * (dim(p.in_channels) / std::max<size_t>(dim(p.group), 1)) *
                         dim(p.kernel_h) * dim(p.kernel_w);
    return align_up(elems * element_size(dtype));
}

size_t split_scratch_bytes(const DeformConvParams& p) {
    const size_t out = dim(p.batch) * dim(p.out_channels) * dim(p.out_height) * dim(p.out_width);
    return std::min(kSplitScratchBytes, align_up(out * kMaxSplits * sizeof(float)));
}

template <typename T>
__global__ void reorder_weight_kernel(const T* w, T* wt, int32_t cg, int32_t taps, int32_t ocg, int64_t total) {
    for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
         e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        reorder_weight_element(w, wt, cg, taps, ocg, e);
    }
}

template <typename T>
__global__ void reduce_splits_kernel(DeformGemm<T> g) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < g.out_elems;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        reduce_element(g, i);
    }
}

unsigned grid_for(int64_t total, int threads) {
    const int64_t blocks = (total + threads - 1) / threads;
    return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535));
}

template <typename T>
cudaError_t forward_typed(const DeformConvParams& p, const void* x, const void* weight, const void* offset,
                          const void* mask, const void* bias, void* y, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream) {
    int device = 0, sms = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err != cudaSuccess) return err;

    const size_t wbytes = weight_copy_bytes(p, sizeof(T) == 2 ? DType::kFloat16 : DType::kFloat32);
    DeformGemm<T> g = make_gemm<T>(p);
    g.x = static_cast<const T*>(x);
    g.offset = static_cast<const T*>(offset);
    g.mask = static_cast<const T*>(mask);
    g.bias = static_cast<const T*>(bias);
    g.y = static_cast<T*>(y);
    T* wt = static_cast<T*>(workspace);
    g.wt = wt;

    const int block_m = deform_block_m(g.ocg);
    const size_t scratch = std::min(workspace_bytes - wbytes, kSplitScratchBytes);
    plan_splits(g, block_m, kDeformBN, kDeformBK, sms, kMaxSplits, kMinKStepsPerSplit, scratch);
    g.partial = g.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(workspace) + wbytes) : nullptr;

    const int64_t wtotal = static_cast<int64_t>(p.out_channels) * g.K;
    reorder_weight_kernel<T><<<grid_for(wtotal, 256), 256, 0, stream>>>(static_cast<const T*>(weight), wt, g.cg,
                                                                         g.taps, g.ocg, wtotal);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;

    const dim3 grid(static_cast<unsigned>((static_cast<int64_t>(g.n_cols) + kDeformBN - 1) / kDeformBN),
                    static_cast<unsigned>(g.m_blocks * p.group), static_cast<unsigned>(g.splits));
    if constexpr (sizeof(T) == 2) {
        err = launch_deform_gemm_f16(g, block_m, grid, stream);
    } else {
        err = launch_deform_gemm_f32(g, block_m, grid, stream);
    }
    if (err != cudaSuccess) return err;

    if (g.splits > 1) {
        reduce_splits_kernel<T><<<grid_for(g.out_elems, 256), 256, 0, stream>>>(g);
        err = cudaGetLastError();
    }
    return err;
}

}  // namespace
}  // namespace detail

int64_t deform_conv_output_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad_begin, int64_t pad_end,
                                int64_t dilation) {
    if (stride <= 0) return 0;
    const int64_t span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1;
    // Floor division, also for a negative span (then the size is <= 0).
    return (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
}

std::string deform_conv_check(const DeformConvParams& p) {
    std::ostringstream why;
    if (p.batch < 0) why << "batch must be >= 0 (got " << p.batch << "); ";
    if (p.in_channels <= 0 || p.in_height <= 0 || p.in_width <= 0)
        why << "input channels, height and width must be positive; ";
    if (p.out_channels <= 0) why << "output channels must be positive; ";
    if (p.kernel_h <= 0 || p.kernel_w <= 0) why << "kernel size must be positive; ";
    if (p.stride_h <= 0 || p.stride_w <= 0) why << "strides must be positive; ";
    if (p.dilation_h <= 0 || p.dilation_w <= 0) why << "dilations must be positive; ";
    if (p.pad_top < 0 || p.pad_left < 0 || p.pad_bottom < 0 || p.pad_right < 0) why << "pads must be >= 0; ";
    if (p.group <= 0 || p.offset_group <= 0) why << "group and offset_group must be positive; ";
    if (!why.str().empty()) return why.str().substr(0, why.str().size() - 2);

    if (p.in_channels % p.group)
        why << "in_channels " << p.in_channels << " not divisible by group " << p.group << "; ";
    if (p.out_channels % p.group)
        why << "out_channels " << p.out_channels << " not divisible by group " << p.group << "; ";
    if (p.in_channels % p.offset_group)
        why << "in_channels " << p.in_channels << " not divisible by offset_group " << p.offset_group << "; ";
    const int64_t oh =
        deform_conv_output_size(p.in_height, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom, p.dilation_h);
    const int64_t ow =
        deform_conv_output_size(p.in_width, p.kernel_w, p.stride_w, p.pad_left, p.pad_right, p.dilation_w);
    if (oh <= 0 || ow <= 0) why << "kernel, dilation and pads leave no output pixel; ";
    if (p.out_height != oh || p.out_width != ow)
        why << "output size " << p.out_height << "x" << p.out_width << " (offset/mask spatial size) differs from "
            << oh << "x" << ow << " given by input size, kernel, stride, pads and dilation; ";
    // 32-bit index limits of the kernels (element offsets themselves are 64-bit).
    const int64_t taps = static_cast<int64_t>(p.kernel_h) * p.kernel_w;
    if (static_cast<int64_t>(p.in_height) * p.in_width > INT_MAX) why << "input plane too large; ";
    // Column indices run to a block past batch*oH*oW.
    if (static_cast<int64_t>(p.batch) * p.out_height * p.out_width > INT_MAX - 1024) why << "batch*oH*oW too large; ";
    if (taps * (p.in_channels / std::max(p.group, 1)) > INT_MAX / 2) why << "kernel too large; ";
    if (static_cast<int64_t>(p.offset_group) * taps * 2 > INT_MAX) why << "offset channels too large; ";
    const int64_t m_blocks = (p.out_channels / std::max(p.group, 1) + 63) / 64;
    if (m_blocks * p.group > 65535) why << "too many output channel blocks (group * out_channels/group); ";
    const std::string s = why.str();
    return s.empty() ? s : s.substr(0, s.size() - 2);
}

size_t deform_conv_workspace_size(const DeformConvParams& p, DType dtype) {
    return detail::weight_copy_bytes(p, dtype) + detail::split_scratch_bytes(p);
}

cudaError_t deform_conv_forward(const DeformConvParams& p, DType dtype, const void* x, const void* weight,
                                const void* offset, const void* mask, const void* bias, void* y, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream) {
    if (!deform_conv_check(p).empty()) return cudaErrorInvalidValue;
    if (dtype != DType::kFloat32 && dtype != DType::kFloat16) return cudaErrorInvalidValue;
    if (!x || !weight || !offset || !y || !workspace) return cudaErrorInvalidValue;
    if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;
    if (workspace_bytes < detail::weight_copy_bytes(p, dtype)) return cudaErrorInvalidValue;
    if (p.batch == 0) return cudaSuccess;
    if (dtype == DType::kFloat16)
        return detail::forward_typed<__half>(p, x, weight, offset, mask, bias, y, workspace, workspace_bytes, stream);
    return detail::forward_typed<float>(p, x, weight, offset, mask, bias, y, workspace, workspace_bytes, stream);
}

}  // namespace vqa
