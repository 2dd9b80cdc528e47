"""PyTorch -> ONNX: export with dynamic axes and embedded metadata, validation against PyTorch."""
