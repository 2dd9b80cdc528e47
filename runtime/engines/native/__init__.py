"""vqa-rt's native side from Python: finding the CUDA kernel library and the TensorRT plugin, the
kernels' C ABI, GPU pre-processing, and what CUDA this process can see."""
