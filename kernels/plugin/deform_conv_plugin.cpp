// VqaDeformConv2d: IPluginV3 (core, build and runtime capabilities) and its creator.
#include "deform_conv_plugin.h"

#include <climits>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <utility>

namespace vqa {
namespace plugin {
namespace {

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;
using Severity = nvinfer1::ILogger::Severity;

// Inputs follow the ONNX DeformConv order X, W, offset, [B], [mask]. With four
// inputs the fourth is the bias if it is 1-D and the mask if it is 4-D.
struct Roles {
    int32_t bias = -1, mask = -1;
};
constexpr int32_t kX = 0, kW = 1, kOffset = 2;

Roles roles_for(int32_t nb_inputs, int32_t fourth_rank) {
    Roles r;
    if (nb_inputs == 5) {
        r.bias = 3;
        r.mask = 4;
    } else if (nb_inputs == 4) {
        (fourth_rank == 1 ? r.bias : r.mask) = 3;
    }
    return r;
}

bool is_supported_type(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF; }

DType to_dtype(DataType t) { return t == DataType::kHALF ? DType::kFloat16 : DType::kFloat32; }

// Consistency of input dimensions with each other and with the attributes;
// dimensions < 0 (unknown at build time) are skipped. Empty when consistent.
std::string check_inputs(const DeformConvAttrs& a, const Dims* dims, int32_t nb_inputs) {
    std::ostringstream why;
    if (nb_inputs < 3 || nb_inputs > 5) {
        why << "expects 3 to 5 inputs (X, W, offset, [B], [mask]), got " << nb_inputs;
        return why.str();
    }
    for (int32_t i : {kX, kW, kOffset}) {
        if (dims[i].nbDims != 4) {
            why << "input " << i << " must be 4-D (NCHW), got " << dims[i].nbDims << "-D";
            return why.str();
        }
    }
    const Roles r = roles_for(nb_inputs, dims[nb_inputs > 3 ? 3 : 0].nbDims);
    if (nb_inputs == 4 && r.bias < 0 && r.mask < 0) return "the fourth input must be a 1-D bias or a 4-D mask";
    if (r.bias >= 0 && dims[r.bias].nbDims != 1) return "bias must be 1-D";
    if (r.mask >= 0 && dims[r.mask].nbDims != 4) return "mask must be 4-D";

    auto known = [](int64_t v) { return v >= 0; };
    const Dims& x = dims[kX];
    const Dims& w = dims[kW];
    const Dims& off = dims[kOffset];
    const int64_t kh = w.d[2], kw = w.d[3];
    if (a.kernel_shape[0] > 0 && known(kh) && kh != a.kernel_shape[0])
        why << "kernel_shape[0] " << a.kernel_shape[0] << " differs from the weight's " << kh << "; ";
    if (a.kernel_shape[1] > 0 && known(kw) && kw != a.kernel_shape[1])
        why << "kernel_shape[1] " << a.kernel_shape[1] << " differs from the weight's " << kw << "; ";
    if (known(x.d[1]) && known(w.d[1]) && x.d[1] != w.d[1] * a.group)
        why << "X has " << x.d[1] << " channels, W expects " << w.d[1] << " x group " << a.group << "; ";
    if (known(w.d[0]) && w.d[0] % a.group)
        why << "output channels " << w.d[0] << " not divisible by group " << a.group << "; ";
    if (known(x.d[1]) && x.d[1] % a.offset_group)
        why << "input channels " << x.d[1] << " not divisible by offset_group " << a.offset_group << "; ";
    if (known(kh) && known(kw) && known(off.d[1]) && off.d[1] != a.offset_group * kh * kw * 2)
        why << "offset has " << off.d[1] << " channels, expected offset_group*kH*kW*2 = "
            << a.offset_group * kh * kw * 2 << "; ";
    if (known(x.d[0]) && known(off.d[0]) && x.d[0] != off.d[0]) why << "offset batch differs from X's; ";
    if (known(x.d[2]) && known(kh) && known(off.d[2]) &&
        off.d[2] != deform_conv_output_size(x.d[2], kh, a.strides[0], a.pads[0], a.pads[2], a.dilations[0]))
        why << "offset height " << off.d[2] << " is not the output height of X's " << x.d[2] << "; ";
    if (known(x.d[3]) && known(kw) && known(off.d[3]) &&
        off.d[3] != deform_conv_output_size(x.d[3], kw, a.strides[1], a.pads[1], a.pads[3], a.dilations[1]))
        why << "offset width " << off.d[3] << " is not the output width of X's " << x.d[3] << "; ";
    if (r.mask >= 0) {
        const Dims& m = dims[r.mask];
        if (known(kh) && known(kw) && known(m.d[1]) && m.d[1] != a.offset_group * kh * kw)
            why << "mask has " << m.d[1] << " channels, expected offset_group*kH*kW = " << a.offset_group * kh * kw
                << "; ";
        for (int i : {0, 2, 3}) {
            if (known(m.d[i]) && known(off.d[i]) && m.d[i] != off.d[i]) {
                why << "mask dimension " << i << " differs from offset's; ";
                break;
            }
        }
    }
    if (r.bias >= 0 && known(dims[r.bias].d[0]) && known(w.d[0]) && dims[r.bias].d[0] != w.d[0])
        why << "bias has " << dims[r.bias].d[0] << " elements, expected " << w.d[0] << "; ";
    const std::string s = why.str();
    return s.empty() ? s : s.substr(0, s.size() - 2);
}

// Launcher parameters from dimensions (clamped into int32; callers validate).
DeformConvParams params_from(const DeformConvAttrs& a, const Dims* dims) {
    auto i32 = [](int64_t v) { return static_cast<int32_t>(v < 0 ? 0 : (v > INT_MAX ? INT_MAX : v)); };
    DeformConvParams p;
    p.batch = i32(dims[kX].d[0]);
    p.in_channels = i32(dims[kX].d[1]);
    p.in_height = i32(dims[kX].d[2]);
    p.in_width = i32(dims[kX].d[3]);
    p.out_channels = i32(dims[kW].d[0]);
    p.kernel_h = i32(dims[kW].d[2]);
    p.kernel_w = i32(dims[kW].d[3]);
    p.out_height = i32(dims[kOffset].d[2]);
    p.out_width = i32(dims[kOffset].d[3]);
    p.stride_h = a.strides[0];
    p.stride_w = a.strides[1];
    p.pad_top = a.pads[0];
    p.pad_left = a.pads[1];
    p.pad_bottom = a.pads[2];
    p.pad_right = a.pads[3];
    p.dilation_h = a.dilations[0];
    p.dilation_w = a.dilations[1];
    p.group = a.group;
    p.offset_group = a.offset_group;
    return p;
}

// Copies an INT32 or INT64 field of exactly `n` values into `out`.
bool read_ints(const PluginField& f, int32_t n, int32_t* out, std::string& error) {
    if (f.length != n) {
        error = std::string("attribute '") + f.name + "' needs " + std::to_string(n) + " value(s), got " +
                std::to_string(f.length);
        return false;
    }
    for (int32_t i = 0; i < n; ++i) {
        int64_t v;
        if (f.type == PluginFieldType::kINT32) {
            v = static_cast<const int32_t*>(f.data)[i];
        } else if (f.type == PluginFieldType::kINT64) {
            v = static_cast<const int64_t*>(f.data)[i];
        } else {
            error = std::string("attribute '") + f.name + "' must be INT32 or INT64";
            return false;
        }
        if (v < INT_MIN || v > INT_MAX) {
            error = std::string("attribute '") + f.name + "' is out of the int32 range";
            return false;
        }
        out[i] = static_cast<int32_t>(v);
    }
    return true;
}

}  // namespace

std::string DeformConvAttrs::check() const {
    std::ostringstream why;
    if (strides[0] <= 0 || strides[1] <= 0) why << "strides must be positive; ";
    if (dilations[0] <= 0 || dilations[1] <= 0) why << "dilations must be positive; ";
    if (pads[0] < 0 || pads[1] < 0 || pads[2] < 0 || pads[3] < 0) why << "pads must be >= 0; ";
    if (group <= 0) why << "group must be positive; ";
    if (offset_group <= 0) why << "offset_group must be positive; ";
    if (kernel_shape[0] < 0 || kernel_shape[1] < 0) why << "kernel_shape must be positive; ";
    const std::string s = why.str();
    return s.empty() ? s : s.substr(0, s.size() - 2);
}

std::string DeformConvAttrs::describe() const {
    std::ostringstream s;
    s << "strides=" << strides[0] << "," << strides[1] << " pads=" << pads[0] << "," << pads[1] << "," << pads[2]
      << "," << pads[3] << " dilations=" << dilations[0] << "," << dilations[1] << " group=" << group
      << " offset_group=" << offset_group << " kernel_shape=" << kernel_shape[0] << "," << kernel_shape[1];
    return s.str();
}

bool parse_attrs(const nvinfer1::PluginFieldCollection& fields, DeformConvAttrs& attrs, std::string& error) {
    if (fields.nbFields > 0 && fields.fields == nullptr) {
        error = "null field array";
        return false;
    }
    for (int32_t i = 0; i < fields.nbFields; ++i) {
        const PluginField& f = fields.fields[i];
        if (f.name == nullptr) continue;
        const std::string name = f.name;
        if (f.data == nullptr) {
            if (f.length == 0) continue;  // an attribute left unset
            error = "attribute '" + name + "' has no data";
            return false;
        }
        bool ok = true;
        if (name == "strides") {
            ok = read_ints(f, 2, attrs.strides, error);
        } else if (name == "pads") {
            ok = read_ints(f, 4, attrs.pads, error);
        } else if (name == "dilations") {
            ok = read_ints(f, 2, attrs.dilations, error);
        } else if (name == "group") {
            ok = read_ints(f, 1, &attrs.group, error);
        } else if (name == "offset_group") {
            ok = read_ints(f, 1, &attrs.offset_group, error);
        } else if (name == "kernel_shape") {
            ok = read_ints(f, 2, attrs.kernel_shape, error);
        } else if (name != "plugin_namespace" && name != "plugin_version") {
            log(Severity::kWARNING, std::string(kDeformConvName) + ": ignoring unknown attribute '" + name + "'");
        }
        if (!ok) return false;
    }
    error = attrs.check();
    return error.empty();
}

// ---------------------------------------------------------------- plugin

DeformConvPlugin::DeformConvPlugin(std::string layer_name, const DeformConvAttrs& attrs, std::string name_space)
    : mLayerName(std::move(layer_name)),
      mAttrs(attrs),
      mNamespace(std::move(name_space)),
      mDescription(attrs.describe()) {}

nvinfer1::IPluginCapability* DeformConvPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept {
    switch (type) {
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* DeformConvPlugin::clone() noexcept {
    try {
        auto* copy = new DeformConvPlugin(mLayerName, mAttrs, mNamespace);
        copy->mNbInputs = mNbInputs;
        return copy;
    } catch (const std::exception& e) {
        log(Severity::kERROR, mLayerName + ": clone failed: " + e.what());
        return nullptr;
    }
}

int32_t DeformConvPlugin::getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t nb_inputs,
                                          const nvinfer1::DimsExprs* /*shape_inputs*/, int32_t /*nb_shape_inputs*/,
                                          nvinfer1::DimsExprs* outputs, int32_t nb_outputs,
                                          nvinfer1::IExprBuilder& /*expr_builder*/) noexcept {
    if (inputs == nullptr || outputs == nullptr || nb_outputs != 1 || nb_inputs < 3 || nb_inputs > 5) {
        log(Severity::kERROR, mLayerName + ": expects 3 to 5 inputs (X, W, offset, [B], [mask]) and one output");
        return -1;
    }
    for (int32_t i : {kX, kW, kOffset}) {
        if (inputs[i].nbDims != 4) {
            log(Severity::kERROR, mLayerName + ": X, W and offset must be 4-D (NCHW)");
            return -1;
        }
    }
    // (N, OC, oH, oW): batch from X, channels from W, spatial size from offset.
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[kX].d[0];
    outputs[0].d[1] = inputs[kW].d[0];
    outputs[0].d[2] = inputs[kOffset].d[2];
    outputs[0].d[3] = inputs[kOffset].d[3];
    return 0;
}

int32_t DeformConvPlugin::getOutputDataTypes(DataType* output_types, int32_t nb_outputs, const DataType* input_types,
                                             int32_t nb_inputs) const noexcept {
    if (output_types == nullptr || input_types == nullptr || nb_outputs != 1 || nb_inputs < 3) return -1;
    for (int32_t i = 0; i < nb_inputs; ++i) {
        if (input_types[i] != input_types[0] || !is_supported_type(input_types[i])) {
            log(Severity::kERROR, mLayerName + ": all inputs must be FP32, or all FP16");
            return -1;
        }
    }
    output_types[0] = input_types[0];
    return 0;
}

bool DeformConvPlugin::supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out,
                                                 int32_t nb_inputs, int32_t nb_outputs) noexcept {
    if (in_out == nullptr || pos < 0 || pos >= nb_inputs + nb_outputs) return false;
    const nvinfer1::PluginTensorDesc& d = in_out[pos].desc;
    if (d.format != nvinfer1::TensorFormat::kLINEAR) return false;
    if (pos == 0) return is_supported_type(d.type);
    return d.type == in_out[0].desc.type;
}

int32_t DeformConvPlugin::configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t nb_inputs,
                                          const nvinfer1::DynamicPluginTensorDesc* /*out*/,
                                          int32_t nb_outputs) noexcept {
    try {
        if (in == nullptr || nb_outputs != 1 || nb_inputs < 3 || nb_inputs > 5) {
            log(Severity::kERROR, mLayerName + ": expects 3 to 5 inputs and one output");
            return -1;
        }
        Dims dims[5];
        for (int32_t i = 0; i < nb_inputs; ++i) dims[i] = in[i].desc.dims;
        const std::string why = check_inputs(mAttrs, dims, nb_inputs);
        if (!why.empty()) {
            log(Severity::kERROR, mLayerName + ": " + why);
            return -1;
        }
        mNbInputs = nb_inputs;
        return 0;
    } catch (const std::exception& e) {
        log(Severity::kERROR, mLayerName + ": " + e.what());
        return -1;
    }
}

size_t DeformConvPlugin::getWorkspaceSize(const nvinfer1::DynamicPluginTensorDesc* inputs, int32_t nb_inputs,
                                          const nvinfer1::DynamicPluginTensorDesc* /*outputs*/,
                                          int32_t /*nb_outputs*/) const noexcept {
    if (inputs == nullptr || nb_inputs < 3) return 0;
    // The launcher's size never decreases as a dimension grows, so the profile's
    // largest shapes bound every shape the engine will run.
    Dims dims[5];
    for (int32_t i = 0; i < nb_inputs && i < 5; ++i) dims[i] = inputs[i].max;
    return deform_conv_workspace_size(params_from(mAttrs, dims), to_dtype(inputs[0].desc.type));
}

bool DeformConvPlugin::make_params(const Dims* dims, int32_t nb_inputs, DeformConvParams& params) const {
    std::string why = check_inputs(mAttrs, dims, nb_inputs);
    if (why.empty()) {
        for (int32_t i = 0; i < nb_inputs && why.empty(); ++i)
            for (int32_t d = 0; d < dims[i].nbDims; ++d)
                if (dims[i].d[d] > INT_MAX) why = "dimensions beyond int32 are not supported";
    }
    if (why.empty()) {
        params = params_from(mAttrs, dims);
        why = deform_conv_check(params);
    }
    if (!why.empty()) {
        log(Severity::kERROR, mLayerName + ": " + why);
        return false;
    }
    return true;
}

int32_t DeformConvPlugin::onShapeChange(const nvinfer1::PluginTensorDesc* in, int32_t nb_inputs,
                                        const nvinfer1::PluginTensorDesc* /*out*/, int32_t /*nb_outputs*/) noexcept {
    try {
        if (in == nullptr || nb_inputs < 3 || nb_inputs > 5) return -1;
        Dims dims[5];
        for (int32_t i = 0; i < nb_inputs; ++i) dims[i] = in[i].dims;
        DeformConvParams params;
        if (!make_params(dims, nb_inputs, params)) return -1;
        mNbInputs = nb_inputs;
        return 0;
    } catch (const std::exception& e) {
        log(Severity::kERROR, mLayerName + ": " + e.what());
        return -1;
    }
}

int32_t DeformConvPlugin::enqueue(const nvinfer1::PluginTensorDesc* input_desc,
                                  const nvinfer1::PluginTensorDesc* /*output_desc*/, const void* const* inputs,
                                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept {
    try {
        if (input_desc == nullptr || inputs == nullptr || outputs == nullptr) return -1;
        // enqueue() is not told the input count: onShapeChange() recorded it.
        const int32_t nb_inputs = mNbInputs;
        if (nb_inputs < 3) {
            log(Severity::kERROR, mLayerName + ": enqueue before onShapeChange");
            return -1;
        }
        Dims dims[5];
        for (int32_t i = 0; i < nb_inputs; ++i) dims[i] = input_desc[i].dims;
        DeformConvParams p;
        if (!make_params(dims, nb_inputs, p)) return -1;
        const Roles r = roles_for(nb_inputs, nb_inputs > 3 ? dims[3].nbDims : 0);
        const DType dtype = to_dtype(input_desc[0].type);
        const void* mask = r.mask >= 0 ? inputs[r.mask] : nullptr;
        const void* bias = r.bias >= 0 ? inputs[r.bias] : nullptr;
        const cudaError_t err = deform_conv_forward(p, dtype, inputs[kX], inputs[kW], inputs[kOffset], mask, bias,
                                                    outputs[0], workspace, deform_conv_workspace_size(p, dtype),
                                                    stream);
        if (err != cudaSuccess) {
            log(Severity::kERROR, mLayerName + ": kernel launch failed: " + cudaGetErrorName(err) + " (" +
                                      cudaGetErrorString(err) + ")");
            return -1;
        }
        return 0;
    } catch (const std::exception& e) {
        log(Severity::kERROR, mLayerName + ": " + e.what());
        return -1;
    }
}

nvinfer1::IPluginV3* DeformConvPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept {
    return clone();  // no per-context resources
}

const nvinfer1::PluginFieldCollection* DeformConvPlugin::getFieldsToSerialize() noexcept {
    try {
        mSerialFields.clear();
        mSerialFields.emplace_back("strides", mAttrs.strides, PluginFieldType::kINT32, 2);
        mSerialFields.emplace_back("pads", mAttrs.pads, PluginFieldType::kINT32, 4);
        mSerialFields.emplace_back("dilations", mAttrs.dilations, PluginFieldType::kINT32, 2);
        mSerialFields.emplace_back("group", &mAttrs.group, PluginFieldType::kINT32, 1);
        mSerialFields.emplace_back("offset_group", &mAttrs.offset_group, PluginFieldType::kINT32, 1);
        mSerialFields.emplace_back("kernel_shape", mAttrs.kernel_shape, PluginFieldType::kINT32, 2);
        mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
        mSerialCollection.fields = mSerialFields.data();
        return &mSerialCollection;
    } catch (const std::exception& e) {
        log(Severity::kERROR, mLayerName + ": " + e.what());
        return nullptr;
    }
}

// ---------------------------------------------------------------- creator

DeformConvPluginCreator::DeformConvPluginCreator() {
    mFields.emplace_back("strides", nullptr, PluginFieldType::kINT32, 2);
    mFields.emplace_back("pads", nullptr, PluginFieldType::kINT32, 4);
    mFields.emplace_back("dilations", nullptr, PluginFieldType::kINT32, 2);
    mFields.emplace_back("group", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("offset_group", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("kernel_shape", nullptr, PluginFieldType::kINT32, 2);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

nvinfer1::IPluginV3* DeformConvPluginCreator::createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fc,
                                                           nvinfer1::TensorRTPhase /*phase*/) noexcept {
    try {
        const std::string layer = name ? name : kDeformConvName;
        DeformConvAttrs attrs;
        std::string error;
        if (fc != nullptr && !parse_attrs(*fc, attrs, error)) {
            log(Severity::kERROR, layer + ": " + error);
            return nullptr;
        }
        return new DeformConvPlugin(layer, attrs, kPluginNamespace);
    } catch (const std::exception& e) {
        log(Severity::kERROR, std::string(kDeformConvName) + ": createPlugin failed: " + e.what());
        return nullptr;
    }
}

}  // namespace plugin
}  // namespace vqa
