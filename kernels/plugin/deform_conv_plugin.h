// TensorRT IPluginV3 "VqaDeformConv2d" (version "1", namespace "vqa_rt"): the ONNX
// DeformConv operator on kernels/deform_conv. See README.md beside this file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <NvInferRuntime.h>

#include "deform_conv/deform_conv.h"

namespace vqa {
namespace plugin {

constexpr char kDeformConvName[] = "VqaDeformConv2d";
constexpr char kDeformConvVersion[] = "1";
constexpr char kPluginNamespace[] = "vqa_rt";

// The ONNX DeformConv attributes (2-D).
struct DeformConvAttrs {
    int32_t strides[2] = {1, 1};
    int32_t pads[4] = {0, 0, 0, 0};  // top, left, bottom, right
    int32_t dilations[2] = {1, 1};
    int32_t group = 1;
    int32_t offset_group = 1;
    int32_t kernel_shape[2] = {0, 0};  // 0: taken from the weight

    // Empty when valid, else what is wrong.
    std::string check() const;
    // "strides=1,1 pads=... " for logs, metadata and the timing cache.
    std::string describe() const;
};

// Reads attributes from plugin fields (INT32 or INT64; unknown fields ignored
// with a warning). Returns false with `error` set on a malformed field.
bool parse_attrs(const nvinfer1::PluginFieldCollection& fields, DeformConvAttrs& attrs, std::string& error);

class DeformConvPlugin final : public nvinfer1::IPluginV3,
                               public nvinfer1::IPluginV3OneCore,
                               public nvinfer1::IPluginV3OneBuild,
                               public nvinfer1::IPluginV3OneRuntime {
   public:
    DeformConvPlugin(std::string layer_name, const DeformConvAttrs& attrs, std::string name_space);
    ~DeformConvPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    const char* getPluginName() const noexcept override { return kDeformConvName; }
    const char* getPluginVersion() const noexcept override { return kDeformConvVersion; }
    const char* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    // IPluginV3OneBuild
    int32_t configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t nb_inputs,
                            const nvinfer1::DynamicPluginTensorDesc* out, int32_t nb_outputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* output_types, int32_t nb_outputs,
                               const nvinfer1::DataType* input_types, int32_t nb_inputs) const noexcept override;
    int32_t getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t nb_inputs,
                            const nvinfer1::DimsExprs* shape_inputs, int32_t nb_shape_inputs,
                            nvinfer1::DimsExprs* outputs, int32_t nb_outputs,
                            nvinfer1::IExprBuilder& expr_builder) noexcept override;
    bool supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out, int32_t nb_inputs,
                                   int32_t nb_outputs) noexcept override;
    int32_t getNbOutputs() const noexcept override { return 1; }
    size_t getWorkspaceSize(const nvinfer1::DynamicPluginTensorDesc* inputs, int32_t nb_inputs,
                            const nvinfer1::DynamicPluginTensorDesc* outputs,
                            int32_t nb_outputs) const noexcept override;
    const char* getTimingCacheID() noexcept override { return mDescription.c_str(); }
    const char* getMetadataString() noexcept override { return mDescription.c_str(); }

    // IPluginV3OneRuntime
    int32_t onShapeChange(const nvinfer1::PluginTensorDesc* in, int32_t nb_inputs,
                          const nvinfer1::PluginTensorDesc* out, int32_t nb_outputs) noexcept override;
    int32_t enqueue(const nvinfer1::PluginTensorDesc* input_desc, const nvinfer1::PluginTensorDesc* output_desc,
                    const void* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override;

   private:
    // Launcher parameters from concrete input dimensions; false (and a logged
    // message) when the inputs do not fit the attributes.
    bool make_params(const nvinfer1::Dims* dims, int32_t nb_inputs, DeformConvParams& params) const;

    std::string mLayerName;
    DeformConvAttrs mAttrs;
    std::string mNamespace;
    std::string mDescription;
    int32_t mNbInputs = 0;  // set by configurePlugin / onShapeChange (enqueue is not told)
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

class DeformConvPluginCreator final : public nvinfer1::IPluginCreatorV3One {
   public:
    DeformConvPluginCreator();
    ~DeformConvPluginCreator() override = default;

    nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;
    const nvinfer1::PluginFieldCollection* getFieldNames() noexcept override { return &mFieldCollection; }
    const char* getPluginName() const noexcept override { return kDeformConvName; }
    const char* getPluginVersion() const noexcept override { return kDeformConvVersion; }
    const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }

   private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

// Logs through the logger TensorRT hands the library (setLoggerFinder); silent before that.
void log(nvinfer1::ILogger::Severity severity, const std::string& message) noexcept;

}  // namespace plugin
}  // namespace vqa
