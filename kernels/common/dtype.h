// Element types the kernels read and write.
#pragma once

#include <cstdint>

namespace vqa {

enum class DType : int32_t { kFloat32 = 0, kFloat16 = 1 };

}  // namespace vqa
