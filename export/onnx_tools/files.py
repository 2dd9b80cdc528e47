"""Writing ONNX files: one file, or the graph plus an external data file above protobuf's 2 GB limit."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

import onnx
from google.protobuf.message import EncodeError

EXTERNAL_DATA_ABOVE = 1_900_000_000  # bytes of serialised model (protobuf's 2 GB limit, with a margin)


def save_onnx(model: onnx.ModelProto, path: str) -> None:
    """Save ``model`` to ``path``; a model larger than :data:`EXTERNAL_DATA_ABOVE` keeps its tensors in
    :func:`external_data` beside it."""
    try:
        large = model.ByteSize() > EXTERNAL_DATA_ABOVE
    except EncodeError:  # protobuf cannot even size a message above 2 GB
        large = True
    onnx.save_model(model, path, save_as_external_data=large,
                    location=os.path.basename(external_data(path)))


def external_data(path: str) -> str:
    """Where :func:`save_onnx` puts the tensors of a large model saved as ``path``."""
    return f"{path}.data"


def write_model_files(output: str, write: Callable[[str], None]) -> None:
    """Call ``write(path)`` to write an ONNX file, and its external data named after it, into a temporary folder
    beside ``output``; then move them into place, the data first and the graph last. On failure nothing is left
    and an earlier ``output`` stays as it was; a stale data file of an earlier, larger ``output`` is removed."""
    folder = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", dir=os.path.dirname(os.path.abspath(output)))
    try:
        staged = os.path.join(folder, os.path.basename(output))
        write(staged)
        if os.path.exists(external_data(staged)):
            os.replace(external_data(staged), external_data(output))
        elif os.path.exists(external_data(output)):
            os.remove(external_data(output))
        os.replace(staged, output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
