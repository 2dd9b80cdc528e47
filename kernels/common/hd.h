// Macros for code compiled for both the device and the host (the host emulation).
#pragma once

#define VQA_HD __host__ __device__ __forceinline__

// "#pragma unroll" where it means something (device code) and nothing on the host.
#ifdef __CUDA_ARCH__
#define VQA_UNROLL _Pragma("unroll")
#else
#define VQA_UNROLL
#endif
