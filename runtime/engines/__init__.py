"""Engines: an engine name resolved once into a record (baseline or model file, its metadata, a
plan's sidecar), and the runners that execute model files (ONNX Runtime, TensorRT)."""
