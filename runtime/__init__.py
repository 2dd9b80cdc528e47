"""The runtime: video frames in -> engines -> scores and QP maps out.

``frames`` reads and selects frames, ``engines`` resolves and runs engines (ONNX Runtime,
TensorRT, vqa-rt's native libraries), ``scorers`` and ``qpmaps`` turn frames into scores and
maps, ``pipeline`` drives them (one decode fanned out to several engines: score, QP maps, jobs,
batches), ``serve`` keeps engines warm behind a socket, ``evaluation`` judges scores against
MOS and ``tools`` holds doctor and inspect. Lower layers never import higher ones (the
import contracts in ``pyproject.toml``); nothing here imports the export side or torch.
"""
