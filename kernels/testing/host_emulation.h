/*
 * Host emulation of the kernels, for tests on machines without a GPU. It runs
 * the kernels' own tiling code (the __host__ __device__ parts: weight
 * re-ordering, split-K plan, A/B tile loading with fused bilinear sampling,
 * epilogue, split-K reduction; the YUV per-pixel maths) serially on the CPU,
 * with a plain loop standing in for the WMMA / register-tile product. Slow;
 * built only with -DVQA_KERNELS_BUILD_TESTING=ON, never installed.
 * Pointers are host pointers.
 */
#ifndef VQA_KERNELS_HOST_EMULATION_H
#define VQA_KERNELS_HOST_EMULATION_H

#include "capi/vqa_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* As vqa_deform_conv_forward; `sm_count` stands in for the GPU's SM count in the
 * split-K plan (e.g. 132 for an H100). Returns the number of K splits used via
 * `splits` (may be NULL). */
VQA_API int32_t vqa_emulate_deform_conv_forward(const vqa_deform_conv_params* params, int32_t dtype, const void* x,
                                                const void* weight, const void* offset, const void* mask,
                                                const void* bias, void* y, int32_t sm_count, int32_t* splits);

/* As vqa_yuv420_to_rgb. */
VQA_API int32_t vqa_emulate_yuv420_to_rgb(const vqa_yuv_to_rgb_params* params, const void* y, const void* u,
                                          const void* v, void* out);

#ifdef __cplusplus
}
#endif

#endif /* VQA_KERNELS_HOST_EMULATION_H */
