// Exercises libvqa_trt_plugin.so the way TensorRT would, without TensorRT: dlopen,
// getCreators / setLoggerFinder, creator fields, createPlugin (build fields as
// INT32 and INT64, bad fields), capabilities, shape and type inference, format
// support, configuration checks, workspace size, serialisation round trip,
// onShapeChange, and enqueue (which, without a GPU, must fail cleanly).
//
// Usage: vqa_trt_plugin_check <path to libvqa_trt_plugin.so>; exit status 0 when
// every check passes. Built with -DVQA_KERNELS_BUILD_TESTING=ON when the plugin is.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <NvInferRuntime.h>

using namespace nvinfer1;

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    if (!ok) ++g_failures;
}

class CapturingLogger : public ILogger {
   public:
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) messages.emplace_back(msg);
    }
    bool saw(const std::string& text) const {
        for (const auto& m : messages)
            if (m.find(text) != std::string::npos) return true;
        return false;
    }
    std::vector<std::string> messages;
};

class Finder : public ILoggerFinder {
   public:
    explicit Finder(ILogger* logger) : logger_(logger) {}
    ILogger* findLogger() override { return logger_; }

   private:
    ILogger* logger_;
};

Dims dims(std::initializer_list<int64_t> values) {
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    int i = 0;
    for (int64_t v : values) d.d[i++] = v;
    return d;
}

PluginTensorDesc desc(const Dims& d, DataType type = DataType::kFLOAT) {
    PluginTensorDesc t{};
    t.dims = d;
    t.type = type;
    t.format = TensorFormat::kLINEAR;
    t.scale = -1.f;
    return t;
}

DynamicPluginTensorDesc dyn(const Dims& d, DataType type = DataType::kFLOAT) {
    DynamicPluginTensorDesc t{};
    t.desc = desc(d, type);
    t.min = d;
    t.opt = d;
    t.max = d;
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s libvqa_trt_plugin.so\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        std::fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto get_creators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    auto set_logger_finder = reinterpret_cast<SetLoggerFinder>(dlsym(lib, "setLoggerFinder"));
    check(get_creators && set_logger_finder, "exports getCreators and setLoggerFinder");
    if (!get_creators || !set_logger_finder) return 1;

    CapturingLogger logger;
    Finder finder(&logger);
    set_logger_finder(&finder);

    int32_t n = 0;
    IPluginCreatorInterface* const* creators = get_creators(n);
    check(n == 1 && creators && creators[0], "one creator");
    auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
    check(std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0,
          "creator is IPluginCreatorV3One");
    check(std::string(creator->getPluginName()) == "VqaDeformConv2d" &&
              std::string(creator->getPluginVersion()) == "1" && std::string(creator->getPluginNamespace()) == "vqa_rt",
          "name VqaDeformConv2d, version 1, namespace vqa_rt");
    const PluginFieldCollection* names = creator->getFieldNames();
    std::string listed;
    for (int i = 0; names && i < names->nbFields; ++i) listed += std::string(names->fields[i].name) + " ";
    check(listed == "strides pads dilations group offset_group kernel_shape ", "field names: " + listed);

    // Build-phase fields as the ONNX parser gives them (INT32), one as INT64.
    const int32_t strides[2] = {2, 1}, pads[4] = {1, 0, 2, 1}, dilations[2] = {1, 2}, group = 2;
    const int64_t offset_group = 2;
    std::vector<PluginField> fields = {
        {"strides", strides, PluginFieldType::kINT32, 2},   {"pads", pads, PluginFieldType::kINT32, 4},
        {"dilations", dilations, PluginFieldType::kINT32, 2}, {"group", &group, PluginFieldType::kINT32, 1},
        {"offset_group", &offset_group, PluginFieldType::kINT64, 1},
        {"plugin_namespace", "vqa_rt", PluginFieldType::kCHAR, 7},
    };
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    IPluginV3* plugin = creator->createPlugin("deform0", &fc, TensorRTPhase::kBUILD);
    check(plugin != nullptr, "createPlugin with ONNX attributes");
    if (!plugin) return 1;
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(core && build && runtime, "core, build and runtime capabilities");
    check(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0 &&
              std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0 &&
              std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0,
          "capability interface kinds");
    check(std::string(core->getPluginNamespace()) == "vqa_rt" && build->getNbOutputs() == 1, "namespace, 1 output");

    // Malformed fields are refused with a message.
    const int32_t three[3] = {1, 1, 1};
    PluginField bad_field{"strides", three, PluginFieldType::kINT32, 3};
    PluginFieldCollection bad{1, &bad_field};
    check(creator->createPlugin("bad", &bad, TensorRTPhase::kBUILD) == nullptr && logger.saw("needs 2 value(s)"),
          "3 strides refused");
    const int32_t zero = 0;
    PluginField zero_group{"group", &zero, PluginFieldType::kINT32, 1};
    PluginFieldCollection bad_group{1, &zero_group};
    check(creator->createPlugin("bad", &bad_group, TensorRTPhase::kBUILD) == nullptr && logger.saw("group must be"),
          "group 0 refused");

    // X (2, 8, 11, 9), W (6, 4, 3, 3), offset (2, 2*9*2, oH, oW), bias (6), mask (2, 18, oH, oW).
    // oH = (11 + 1 + 2 - 2 - 1) / 2 + 1 = 6, oW = (9 + 0 + 1 - 4 - 1) / 1 + 1 = 6.
    const Dims x = dims({2, 8, 11, 9}), w = dims({6, 4, 3, 3}), off = dims({2, 36, 6, 6}), b = dims({6}),
               m = dims({2, 18, 6, 6});
    int expr_storage[8];
    auto expr = [&](int i) { return reinterpret_cast<const IDimensionExpr*>(&expr_storage[i]); };
    DimsExprs in_exprs[5];
    for (int i = 0; i < 5; ++i) {
        const Dims& d = i == 0 ? x : i == 1 ? w : i == 2 ? off : i == 3 ? b : m;
        in_exprs[i].nbDims = d.nbDims;
        for (int k = 0; k < d.nbDims; ++k) in_exprs[i].d[k] = expr(k + (i == 1 ? 4 : 0));
    }
    in_exprs[2].d[2] = expr(6);
    in_exprs[2].d[3] = expr(7);
    DimsExprs out_expr{};
    alignas(16) unsigned char fake_builder[64] = {};
    int32_t rc = build->getOutputShapes(in_exprs, 5, nullptr, 0, &out_expr, 1,
                                        *reinterpret_cast<IExprBuilder*>(fake_builder));
    check(rc == 0 && out_expr.nbDims == 4 && out_expr.d[0] == expr(0) && out_expr.d[1] == expr(4) &&
              out_expr.d[2] == expr(6) && out_expr.d[3] == expr(7),
          "output shape (X.N, W.OC, offset.H, offset.W)");

    DataType types[5] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF};
    DataType out_type = DataType::kFLOAT;
    check(build->getOutputDataTypes(&out_type, 1, types, 5) == 0 && out_type == DataType::kHALF, "output type = input");
    types[4] = DataType::kFLOAT;
    check(build->getOutputDataTypes(&out_type, 1, types, 5) != 0, "mixed input types refused");

    DynamicPluginTensorDesc io[6] = {dyn(x), dyn(w), dyn(off), dyn(b), dyn(m), dyn(dims({2, 6, 6, 6}))};
    check(build->supportsFormatCombination(0, io, 5, 1), "FP32 linear supported");
    io[0].desc.type = DataType::kHALF;
    check(build->supportsFormatCombination(0, io, 5, 1), "FP16 linear supported");
    check(!build->supportsFormatCombination(3, io, 5, 1), "bias type must follow X");
    io[0].desc.type = DataType::kINT8;
    check(!build->supportsFormatCombination(0, io, 5, 1), "INT8 refused");
    io[0].desc.type = DataType::kFLOAT;
    io[0].desc.format = TensorFormat::kHWC;
    check(!build->supportsFormatCombination(0, io, 5, 1), "non-linear format refused");
    io[0].desc.format = TensorFormat::kLINEAR;

    check(build->configurePlugin(io, 5, &io[5], 1) == 0, "configure: consistent shapes");
    DynamicPluginTensorDesc wildcard[6] = {io[0], io[1], io[2], io[3], io[4], io[5]};
    wildcard[0].desc.dims = dims({-1, 8, -1, -1});
    wildcard[2].desc.dims = dims({-1, 36, -1, -1});
    wildcard[4].desc.dims = dims({-1, 18, -1, -1});
    check(build->configurePlugin(wildcard, 5, &io[5], 1) == 0, "configure: dynamic batch and size");
    DynamicPluginTensorDesc wrong[6] = {io[0], io[1], io[2], io[3], io[4], io[5]};
    wrong[2].desc.dims = dims({2, 18, 6, 6});
    check(build->configurePlugin(wrong, 5, &io[5], 1) != 0 && logger.saw("expected offset_group*kH*kW*2 = 36"),
          "configure: wrong offset channels refused");
    wrong[2].desc.dims = dims({2, 36, 7, 6});
    check(build->configurePlugin(wrong, 5, &io[5], 1) != 0 && logger.saw("offset height 7"),
          "configure: wrong output height refused");
    // Four inputs: a 4-D fourth input is the mask.
    DynamicPluginTensorDesc four[5] = {io[0], io[1], io[2], io[4], io[5]};
    check(build->configurePlugin(four, 4, &four[4], 1) == 0, "configure: X, W, offset, mask");

    const size_t ws = build->getWorkspaceSize(io, 5, &io[5], 1);
    DynamicPluginTensorDesc bigger[6] = {io[0], io[1], io[2], io[3], io[4], io[5]};
    bigger[0].max = dims({8, 8, 111, 99});
    bigger[2].max = dims({8, 36, 56, 96});
    bigger[4].max = dims({8, 18, 56, 96});
    check(ws >= 6 * 4 * 9 * 4 && build->getWorkspaceSize(bigger, 5, &io[5], 1) >= ws,
          "workspace size from max dims: " + std::to_string(ws));

    // Serialisation round trip through the runtime phase.
    const PluginFieldCollection* serial = runtime->getFieldsToSerialize();
    check(serial && serial->nbFields == 6, "serialises 6 fields");
    IPluginV3* restored = creator->createPlugin("deform0", serial, TensorRTPhase::kRUNTIME);
    check(restored != nullptr, "createPlugin from serialised fields");
    auto* restored_build =
        static_cast<IPluginV3OneBuild*>(restored->getCapabilityInterface(PluginCapabilityType::kBUILD));
    check(std::string(restored_build->getMetadataString()) == std::string(build->getMetadataString()),
          std::string("attributes survive: ") + build->getMetadataString());
    IPluginV3* attached = runtime->attachToContext(nullptr);
    check(attached != nullptr, "attachToContext clones");

    // Runtime: shapes then enqueue. Without a GPU the launch must fail cleanly.
    auto* rt = static_cast<IPluginV3OneRuntime*>(attached->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    PluginTensorDesc in_desc[5] = {desc(x), desc(w), desc(off), desc(b), desc(m)};
    PluginTensorDesc out_desc = desc(dims({2, 6, 6, 6}));
    check(rt->onShapeChange(in_desc, 5, &out_desc, 1) == 0, "onShapeChange: valid shapes");
    PluginTensorDesc bad_in[5] = {desc(x), desc(w), desc(dims({2, 36, 5, 6})), desc(b), desc(m)};
    check(rt->onShapeChange(bad_in, 5, &out_desc, 1) != 0, "onShapeChange: inconsistent shapes refused");
    const char* env_gpu = std::getenv("VQA_PLUGIN_CHECK_HAS_GPU");
    if (env_gpu == nullptr || std::string(env_gpu) != "1") {
        alignas(256) static unsigned char fake[1];
        const void* inputs[5] = {fake, fake, fake, fake, fake};
        void* outputs[1] = {fake};
        const size_t before = logger.messages.size();
        const int32_t status = rt->enqueue(in_desc, &out_desc, inputs, outputs, fake, nullptr);
        const bool logged = logger.messages.size() > before;
        check(status != 0 && logged,
              "enqueue without a GPU fails with a logged error: " + (logged ? logger.messages.back() : std::string()));
    }

    delete attached;
    delete restored;
    delete plugin;
    std::printf("%d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
