// score_plan: per-frame scores of a distorted video against its reference with a vqa-rt FR plan,
// driven by TensorRT's C++ API alone (no Python). Tensor names, mean/std and colour settings come
// from the command line; copy them from `vqa-rt inspect --json fr.plan` (see README.md).
//
// Per frame: raw YUV 4:2:0 of both videos -> GPU -> normalised planar RGB float (libvqa_kernels'
// C ABI) -> enqueueV3 with the frame and its predecessor (the frame itself for the first) ->
// the engine's outputs, one value each at batch 1.
#include <cuda_runtime_api.h>

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "capi/vqa_kernels.h"

namespace {

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::TensorIOMode;

const char* const kUsage =
    "usage: score_plan --plan fr.plan [--plugin libvqa_trt_plugin.so] --reference ref.yuv --distorted dist.yuv\n"
    "                  --width W --height H [--pix-fmt yuv420p|yuv420p10le] [--max-frames N]\n"
    "                  --inputs REF,DIST,REF_PREV,DIST_PREV --mean M0,M1,M2 --std S0,S1,S2\n"
    "                  [--matrix bt709|bt601] [--range limited|full]\n";

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

void cuda_check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(status));
}

void vqa_check(int32_t status, const char* what) {
    if (status != VQA_OK) fail(std::string(what) + ": " + vqa_status_name(status) + ": " + vqa_last_error());
}

class Logger : public nvinfer1::ILogger {
   public:
    void log(Severity severity, const char* message) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "TensorRT: %s\n", message);
    }
};

struct Args {
    std::map<std::string, std::string> values;

    const std::string& get(const std::string& key) const {
        auto found = values.find(key);
        if (found == values.end()) fail("missing --" + key + "\n" + kUsage);
        return found->second;
    }
    std::string get(const std::string& key, const std::string& fallback) const {
        return values.count(key) ? values.at(key) : fallback;
    }
};

Args parse_args(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; i += 2) {
        std::string key = argv[i];
        if (key.rfind("--", 0) != 0 || i + 1 >= argc) fail(std::string("bad argument ") + argv[i] + "\n" + kUsage);
        args.values[key.substr(2)] = argv[i + 1];
    }
    return args;
}

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    for (std::string part; std::getline(stream, part, ',');) parts.push_back(part);
    return parts;
}

void three_floats(const std::string& text, float out[3], const char* what) {
    auto parts = split(text);
    if (parts.size() != 3) fail(std::string(what) + " needs three comma-separated numbers, got " + text);
    for (int i = 0; i < 3; ++i) out[i] = std::stof(parts[i]);
}

std::vector<char> read_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) fail("cannot open " + path);
    return std::vector<char>((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

int64_t volume(const Dims& dims) {
    int64_t count = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i) count *= dims.d[i];
    return count;
}

std::string describe(const Dims& dims) {
    std::string text = "[";
    for (int32_t i = 0; i < dims.nbDims; ++i) text += (i ? ", " : "") + std::to_string(dims.d[i]);
    return text + "]";
}

template <typename T>
struct Deleter {
    void operator()(T* object) const { delete object; }
};
template <typename T>
using Owned = std::unique_ptr<T, Deleter<T>>;

struct DeviceBuffer {
    void* ptr = nullptr;
    explicit DeviceBuffer(size_t bytes) { cuda_check(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// One raw YUV 4:2:0 file read frame by frame into pinned memory, then to the GPU.
class YuvSource {
   public:
    YuvSource(const std::string& path, int width, int height, int bytes_per_sample)
        : file_(path, std::ios::binary),
          luma_(int64_t(width) * height * bytes_per_sample),
          chroma_(int64_t((width + 1) / 2) * ((height + 1) / 2) * bytes_per_sample),
          device_(size_t(luma_ + 2 * chroma_)) {
        if (!file_) fail("cannot open " + path);
        cuda_check(cudaMallocHost(&host_, size_t(luma_ + 2 * chroma_)), "cudaMallocHost");
    }
    ~YuvSource() { cudaFreeHost(host_); }

    // Reads the next frame and queues its copy to the GPU; false at the end of the file.
    bool next(cudaStream_t stream) {
        if (!file_.read(static_cast<char*>(host_), luma_ + 2 * chroma_)) return false;
        cuda_check(cudaMemcpyAsync(device_.ptr, host_, size_t(luma_ + 2 * chroma_), cudaMemcpyHostToDevice, stream),
                   "cudaMemcpyAsync");
        return true;
    }
    const char* plane(int index) const {
        return static_cast<const char*>(device_.ptr) + (index == 0 ? 0 : luma_ + (index - 1) * chroma_);
    }

   private:
    std::ifstream file_;
    int64_t luma_, chroma_;
    DeviceBuffer device_;
    void* host_ = nullptr;
};

int run(const Args& args) {
    const int width = std::stoi(args.get("width")), height = std::stoi(args.get("height"));
    const std::string pix_fmt = args.get("pix-fmt", "yuv420p");
    if (pix_fmt != "yuv420p" && pix_fmt != "yuv420p10le") fail("--pix-fmt must be yuv420p or yuv420p10le");
    const int bit_depth = pix_fmt == "yuv420p" ? 8 : 10;
    const long max_frames = std::stol(args.get("max-frames", "-1"));
    const std::vector<std::string> inputs = split(args.get("inputs"));  // ref, dist, ref_prev, dist_prev
    if (inputs.size() != 4) fail("--inputs needs the FR plan's four input names: ref,dist,ref_prev,dist_prev");

    vqa_yuv_to_rgb_params params{};
    params.width = width;
    params.height = height;
    params.bit_depth = bit_depth;
    const std::string matrix = args.get("matrix", "bt709"), range = args.get("range", "limited");
    if (matrix != "bt709" && matrix != "bt601") fail("--matrix must be bt709 or bt601");
    if (range != "limited" && range != "full") fail("--range must be limited or full");
    params.matrix = matrix == "bt601" ? VQA_MATRIX_BT601 : VQA_MATRIX_BT709;
    params.range = range == "full" ? VQA_RANGE_FULL : VQA_RANGE_LIMITED;
    params.out_dtype = VQA_DTYPE_FLOAT32;
    three_floats(args.get("mean"), params.mean, "--mean");
    three_floats(args.get("std"), params.std, "--std");

    Logger logger;
    Owned<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    if (!runtime) fail("createInferRuntime failed");
    // The plugin must be registered before a plan that uses it is deserialised; TensorRT calls the
    // library's getCreators() and setLoggerFinder().
    const std::string plugin = args.get("plugin", "");
    if (!plugin.empty() && runtime->getPluginRegistry().loadLibrary(plugin.c_str()) == nullptr)
        fail("TensorRT could not load the plugin library " + plugin);
    const std::vector<char> plan = read_file(args.get("plan"));
    Owned<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine)
        fail("cannot deserialise " + args.get("plan") + " (built for another TensorRT or GPU? plugin missing?)");
    Owned<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
    if (!context) fail("createExecutionContext failed");

    // Inputs at batch 1 and the frame size, within the plan's optimisation profile 0.
    for (const auto& name : inputs) {
        if (engine->getTensorIOMode(name.c_str()) != TensorIOMode::kINPUT) fail(name + " is not an input of the plan");
        Dims dims{};
        dims.nbDims = 4;
        dims.d[0] = 1;
        dims.d[1] = 3;
        dims.d[2] = height;
        dims.d[3] = width;
        if (!context->setInputShape(name.c_str(), dims))
            fail("input " + name + ": shape " + describe(dims) + " is outside the plan's profile " +
                 describe(engine->getProfileShape(name.c_str(), 0, nvinfer1::OptProfileSelector::kMIN)) + " .. " +
                 describe(engine->getProfileShape(name.c_str(), 0, nvinfer1::OptProfileSelector::kMAX)));
    }
    if (!context->allInputDimensionsSpecified()) fail("the plan has inputs other than --inputs");

    cudaStream_t stream;
    cuda_check(cudaStreamCreate(&stream), "cudaStreamCreate");
    const size_t rgb_bytes = size_t(3) * width * height * sizeof(float);
    std::vector<std::unique_ptr<DeviceBuffer>> rgb;  // [video * 2 + slot]: current and previous frame
    for (int i = 0; i < 4; ++i) rgb.push_back(std::make_unique<DeviceBuffer>(rgb_bytes));
    std::vector<std::string> output_names;
    std::vector<std::unique_ptr<DeviceBuffer>> outputs;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        const char* name = engine->getIOTensorName(i);
        if (engine->getTensorDataType(name) != DataType::kFLOAT) fail(std::string(name) + " is not a FLOAT tensor");
        if (engine->getTensorIOMode(name) != TensorIOMode::kOUTPUT) continue;
        const Dims shape = context->getTensorShape(name);
        if (volume(shape) != 1)
            fail(std::string("output ") + name + " has shape " + describe(shape) + ", not one value per frame");
        output_names.push_back(name);
        outputs.push_back(std::make_unique<DeviceBuffer>(sizeof(float)));
        context->setTensorAddress(name, outputs.back()->ptr);
    }

    const int bytes_per_sample = bit_depth > 8 ? 2 : 1;
    YuvSource reference(args.get("reference"), width, height, bytes_per_sample);
    YuvSource distorted(args.get("distorted"), width, height, bytes_per_sample);
    YuvSource* sources[2] = {&reference, &distorted};
    std::vector<float> values(outputs.size());
    double total = 0.0;
    long frame = 0;
    for (; max_frames < 0 || frame < max_frames; ++frame) {
        const bool more = reference.next(stream), more_distorted = distorted.next(stream);
        if (more != more_distorted) fail("the reference and distorted videos have different frame counts");
        if (!more) break;
        for (int video = 0; video < 2; ++video) {
            void* current = rgb[video * 2 + frame % 2]->ptr;
            void* previous = frame == 0 ? current : rgb[video * 2 + (frame + 1) % 2]->ptr;
            const YuvSource& source = *sources[video];
            vqa_check(vqa_yuv420_to_rgb(&params, source.plane(0), source.plane(1), source.plane(2), current, stream),
                      "vqa_yuv420_to_rgb");
            context->setTensorAddress(inputs[video].c_str(), current);
            context->setTensorAddress(inputs[video + 2].c_str(), previous);
        }
        if (!context->enqueueV3(stream)) fail("enqueueV3 failed at frame " + std::to_string(frame));
        for (size_t i = 0; i < outputs.size(); ++i)
            cuda_check(cudaMemcpyAsync(&values[i], outputs[i]->ptr, sizeof(float), cudaMemcpyDeviceToHost, stream),
                       "cudaMemcpyAsync");
        cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        std::printf("frame %ld", frame);
        for (size_t i = 0; i < outputs.size(); ++i) std::printf(" %s %.4f", output_names[i].c_str(), values[i]);
        std::printf("\n");
        total += values[0];
    }
    cudaStreamDestroy(stream);
    if (frame == 0) fail("no frames read");
    std::printf("%ld frames, mean %s %.4f\n", frame, output_names[0].c_str(), total / double(frame));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_args(argc, argv));
    } catch (const std::exception& error) {
        std::fprintf(stderr, "score_plan: error: %s\n", error.what());
        return 2;
    }
}
