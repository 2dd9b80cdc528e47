"""Torch-free tools on ONNX files: writing them, quantization with a fidelity report, TensorRT builds."""
