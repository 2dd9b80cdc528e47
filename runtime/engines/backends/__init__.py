"""One runner interface, one module per backend (ONNX Runtime, TensorRT)."""
