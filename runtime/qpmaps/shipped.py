"""The trained QS model that ships with vqa-rt, as ONNX: what ``vqa-rt qpmap`` runs when no engine is given.

Made by ``make qpmap-model`` (``vqa-rt export qpmap`` of ``export/models/weights/qpmap.safetensors``);
its data, loss and BD-rate are in ``export/models/QPMAP_MODEL_CARD.md``.
"""

import os

SHIPPED_QS_MODEL = os.path.join(os.path.dirname(__file__), "qs_model.onnx")
