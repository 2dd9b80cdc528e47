// C ABI over the kernels: argument checks with readable messages, CUDA errors
// mapped to vqa_status, a per-thread last-error string.
#include "vqa_kernels.h"

#include <string>

#include <cuda_runtime_api.h>

#include "capi/params.h"
#include "deform_conv/deform_conv.h"
#include "preprocess/yuv_to_rgb.h"

#ifndef VQA_KERNELS_VERSION
#error "VQA_KERNELS_VERSION must be defined by the build"
#endif
#ifndef VQA_CUDA_ARCHITECTURES
#define VQA_CUDA_ARCHITECTURES "unknown"
#endif

namespace {

thread_local std::string g_last_error;

int32_t succeed() {
    g_last_error.clear();
    return VQA_OK;
}

int32_t fail(int32_t status, const std::string& message) {
    g_last_error = message;
    return status;
}

bool is_no_device(cudaError_t err) {
    switch (err) {
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorInitializationError:
        case cudaErrorDevicesUnavailable:
        case cudaErrorStubLibrary:
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
        case cudaErrorCallRequiresNewerDriver:
            return true;
        default:
            return false;
    }
}

int32_t from_cuda(cudaError_t err, const char* what) {
    if (err == cudaSuccess) return succeed();
    std::string message = std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    if (is_no_device(err)) return fail(VQA_ERROR_NO_DEVICE, message + "; no usable CUDA device or driver");
    if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorUnsupportedPtxVersion ||
        err == cudaErrorInvalidKernelImage) {
        return fail(VQA_ERROR_UNSUPPORTED_DEVICE,
                    message + "; this library was built for CUDA architectures " VQA_CUDA_ARCHITECTURES
                              " (rebuild with CMAKE_CUDA_ARCHITECTURES including this GPU's)");
    }
    return fail(VQA_ERROR_CUDA, message);
}

bool valid_dtype(int32_t dtype) { return dtype == VQA_DTYPE_FLOAT32 || dtype == VQA_DTYPE_FLOAT16; }

}  // namespace

extern "C" {

const char* vqa_kernels_version(void) { return VQA_KERNELS_VERSION; }

int32_t vqa_kernels_abi_version(void) { return VQA_KERNELS_ABI_VERSION; }

const char* vqa_kernels_build_info(void) {
    static const std::string info = std::string("vqa_kernels ") + VQA_KERNELS_VERSION + "; CUDA " +
                                    std::to_string(CUDART_VERSION / 1000) + "." +
                                    std::to_string(CUDART_VERSION % 1000 / 10) +
                                    "; architectures " VQA_CUDA_ARCHITECTURES;
    return info.c_str();
}

const char* vqa_last_error(void) { return g_last_error.c_str(); }

const char* vqa_status_name(int32_t status) {
    switch (status) {
        case VQA_OK: return "VQA_OK";
        case VQA_ERROR_INVALID_ARGUMENT: return "VQA_ERROR_INVALID_ARGUMENT";
        case VQA_ERROR_NO_DEVICE: return "VQA_ERROR_NO_DEVICE";
        case VQA_ERROR_UNSUPPORTED_DEVICE: return "VQA_ERROR_UNSUPPORTED_DEVICE";
        case VQA_ERROR_CUDA: return "VQA_ERROR_CUDA";
        default: return "VQA_ERROR_UNKNOWN";
    }
}

int32_t vqa_device_count(int32_t* count) {
    if (!count) return fail(VQA_ERROR_INVALID_ARGUMENT, "vqa_device_count: count is NULL");
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    *count = err == cudaSuccess ? n : 0;
    if (err == cudaSuccess && n == 0) return fail(VQA_ERROR_NO_DEVICE, "vqa_device_count: no CUDA device");
    return from_cuda(err, "vqa_device_count");
}

int32_t vqa_deform_conv_workspace_size(const vqa_deform_conv_params* params, int32_t dtype, uint64_t* bytes) {
    if (!params || !bytes) return fail(VQA_ERROR_INVALID_ARGUMENT, "vqa_deform_conv_workspace_size: NULL argument");
    *bytes = 0;
    if (!valid_dtype(dtype)) return fail(VQA_ERROR_INVALID_ARGUMENT, "vqa_deform_conv_workspace_size: unknown dtype");
    const vqa::DeformConvParams p = vqa::capi::to_deform_conv_params(*params);
    const std::string why = vqa::deform_conv_check(p);
    if (!why.empty()) return fail(VQA_ERROR_INVALID_ARGUMENT, "vqa_deform_conv_workspace_size: " + why);
    *bytes = vqa::deform_conv_workspace_size(p, static_cast<vqa::DType>(dtype));
    return succeed();
}

int32_t vqa_deform_conv_forward(const vqa_deform_conv_params* params, int32_t dtype, const void* x,
                                const void* weight, const void* offset, const void* mask, const void* bias, void* y,
                                void* workspace, uint64_t workspace_bytes, void* stream) {
    static const char* const kWhat = "vqa_deform_conv_forward";
    if (!params) return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": params is NULL");
    if (!valid_dtype(dtype)) return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": unknown dtype");
    const vqa::DeformConvParams p = vqa::capi::to_deform_conv_params(*params);
    const std::string why = vqa::deform_conv_check(p);
    if (!why.empty()) return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": " + why);
    if (!x || !weight || !offset || !y)
        return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": x, weight, offset and y must be non-NULL");
    const vqa::DType type = static_cast<vqa::DType>(dtype);
    const size_t need = vqa::deform_conv_workspace_size(p, type);
    if (!workspace || workspace_bytes < need) {
        return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": workspace of " +
                                                    std::to_string(workspace_bytes) + " bytes given, " +
                                                    std::to_string(need) + " needed");
    }
    if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0)
        return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": workspace must be 16-byte aligned");
    return from_cuda(vqa::deform_conv_forward(p, type, x, weight, offset, mask, bias, y, workspace,
                                              static_cast<size_t>(workspace_bytes),
                                              static_cast<cudaStream_t>(stream)),
                     kWhat);
}

int32_t vqa_yuv420_to_rgb(const vqa_yuv_to_rgb_params* params, const void* y, const void* u, const void* v,
                          void* out, void* stream) {
    static const char* const kWhat = "vqa_yuv420_to_rgb";
    if (!params) return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": params is NULL");
    const vqa::YuvToRgbParams p = vqa::capi::to_yuv_params(*params);
    const std::string why = vqa::yuv420_to_rgb_check(p);
    if (!why.empty()) return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": " + why);
    if (!y || !u || !v || !out)
        return fail(VQA_ERROR_INVALID_ARGUMENT, std::string(kWhat) + ": y, u, v and out must be non-NULL");
    return from_cuda(vqa::yuv420_to_rgb(p, y, u, v, out, static_cast<cudaStream_t>(stream)), kWhat);
}

}  // extern "C"
