/*
 * libvqa_kernels: C ABI over the vqa-rt CUDA kernels (deformable convolution,
 * YUV 4:2:0 -> RGB pre-processing), for ctypes and other C callers.
 *
 * Conventions:
 * - Every function returns a vqa_status (int32_t); VQA_OK is 0. On failure,
 *   vqa_last_error() returns a message for the calling thread (it is emptied by
 *   the next successful call on that thread).
 * - Tensor pointers are CUDA device pointers; `stream` is a cudaStream_t (NULL:
 *   the legacy default stream). Work is enqueued asynchronously: an error
 *   raised while a kernel runs shows up at the next synchronisation, not here.
 * - Nothing is allocated: callers own all memory, including the workspace.
 */
#ifndef VQA_KERNELS_H
#define VQA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VQA_API __attribute__((visibility("default")))
#else
#define VQA_API
#endif

/* Bumped whenever a struct layout or signature below changes incompatibly. */
#define VQA_KERNELS_ABI_VERSION 1

typedef enum vqa_status {
    VQA_OK = 0,
    VQA_ERROR_INVALID_ARGUMENT = 1, /* bad shape, attribute, pointer or workspace size */
    VQA_ERROR_NO_DEVICE = 2,        /* no usable CUDA device or driver */
    VQA_ERROR_UNSUPPORTED_DEVICE = 3, /* the library has no kernels for this GPU's architecture */
    VQA_ERROR_CUDA = 4              /* any other CUDA error (message names it) */
} vqa_status;

typedef enum vqa_dtype { VQA_DTYPE_FLOAT32 = 0, VQA_DTYPE_FLOAT16 = 1 } vqa_dtype;
typedef enum vqa_color_matrix { VQA_MATRIX_BT709 = 0, VQA_MATRIX_BT601 = 1 } vqa_color_matrix;
typedef enum vqa_color_range { VQA_RANGE_LIMITED = 0, VQA_RANGE_FULL = 1 } vqa_color_range;

/* ONNX DeformConv (2-D, NCHW). out_height/out_width are the offset/mask
 * spatial size and must equal the ONNX output-size formula. */
typedef struct vqa_deform_conv_params {
    int32_t batch, in_channels, in_height, in_width;
    int32_t out_channels, kernel_h, kernel_w;
    int32_t out_height, out_width;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t dilation_h, dilation_w;
    int32_t group, offset_group;
} vqa_deform_conv_params;

/* One planar YUV 4:2:0 frame to RGB planes, normalised as (v - mean) / std. */
typedef struct vqa_yuv_to_rgb_params {
    int32_t width, height;        /* luma size; chroma is ((width+1)/2) x ((height+1)/2) */
    int32_t bit_depth;            /* 8: uint8 samples; 9..16: uint16 little-endian samples */
    int32_t matrix;               /* vqa_color_matrix */
    int32_t range;                /* vqa_color_range */
    int32_t out_width, out_height; /* both 0: no resize */
    int32_t out_dtype;            /* vqa_dtype */
    int64_t y_pitch, uv_pitch;    /* bytes per row; 0: packed */
    float mean[3], std[3];
} vqa_yuv_to_rgb_params;

/* "MAJOR.MINOR.PATCH" of vqa-rt this library was built from. */
VQA_API const char* vqa_kernels_version(void);
/* VQA_KERNELS_ABI_VERSION of the built library. */
VQA_API int32_t vqa_kernels_abi_version(void);
/* One line: version, CUDA toolkit, GPU architectures compiled in. */
VQA_API const char* vqa_kernels_build_info(void);
/* Message of this thread's last failed call; "" after a successful one. */
VQA_API const char* vqa_last_error(void);
/* Name of a status code, e.g. "VQA_ERROR_NO_DEVICE". */
VQA_API const char* vqa_status_name(int32_t status);

/* Number of CUDA devices visible (0 with VQA_ERROR_NO_DEVICE when there are none). */
VQA_API int32_t vqa_device_count(int32_t* count);

/* Bytes of workspace vqa_deform_conv_forward needs for these parameters (also
 * enough for any problem no larger in every dimension). Needs no GPU. */
VQA_API int32_t vqa_deform_conv_workspace_size(const vqa_deform_conv_params* params, int32_t dtype,
                                               uint64_t* bytes);

/* y = DeformConv(x, weight, offset, bias, mask); mask and bias may be NULL.
 * workspace: device memory of vqa_deform_conv_workspace_size() bytes, 16-byte aligned. */
VQA_API int32_t vqa_deform_conv_forward(const vqa_deform_conv_params* params, int32_t dtype, const void* x,
                                        const void* weight, const void* offset, const void* mask, const void* bias,
                                        void* y, void* workspace, uint64_t workspace_bytes, void* stream);

/* out (3, out_h, out_w) = normalised RGB of the frame with planes y, u, v. */
VQA_API int32_t vqa_yuv420_to_rgb(const vqa_yuv_to_rgb_params* params, const void* y, const void* u, const void* v,
                                  void* out, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* VQA_KERNELS_H */
