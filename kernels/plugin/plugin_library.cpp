// Entry points TensorRT looks up when it loads this library as a plugin library
// (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins): getCreators() for
// IPluginV3 creators and setLoggerFinder(). Nothing here links against libnvinfer.
#include <mutex>
#include <string>

#include <NvInferRuntime.h>

#include "deform_conv_plugin.h"

// TENSORRTAPI exports only when building TensorRT itself; this library exports
// its two entry points explicitly (everything else is hidden).
#define VQA_PLUGIN_API __attribute__((visibility("default")))

namespace vqa {
namespace plugin {
namespace {

std::mutex g_logger_mutex;
nvinfer1::ILoggerFinder* g_logger_finder = nullptr;

}  // namespace

void log(nvinfer1::ILogger::Severity severity, const std::string& message) noexcept {
    try {
        std::lock_guard<std::mutex> lock(g_logger_mutex);
        nvinfer1::ILogger* logger = g_logger_finder ? g_logger_finder->findLogger() : nullptr;
        if (logger) logger->log(severity, message.c_str());
    } catch (...) {
        // Logging must never throw into TensorRT.
    }
}

}  // namespace plugin
}  // namespace vqa

extern "C" {

VQA_PLUGIN_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    std::lock_guard<std::mutex> lock(vqa::plugin::g_logger_mutex);
    if (vqa::plugin::g_logger_finder == nullptr) vqa::plugin::g_logger_finder = finder;
}

VQA_PLUGIN_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static vqa::plugin::DeformConvPluginCreator deform_conv_creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&deform_conv_creator};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

}  // extern "C"
