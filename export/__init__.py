"""The export side: PyTorch checkpoints -> ONNX -> quantized ONNX and TensorRT plans.

``models`` holds the PyTorch definitions, one spec per model kind and checkpoint loading;
``to_onnx`` exports and validates against PyTorch; ``onnx_tools`` works on ONNX files without
torch (quantization with its fidelity report, TensorRT engine builds).
"""
