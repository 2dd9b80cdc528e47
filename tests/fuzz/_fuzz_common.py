"""Shared by the atheris harnesses in this folder.

A harness calls one of vqa-rt's input parsers on each input libFuzzer makes. vqa-rt's typed errors
(:class:`vqa_rt.errors.VqaRtError` and its subclasses) are the expected answer to bad input; any other
exception, or an input that takes longer than libFuzzer's ``-timeout``, is a crash. Each harness runs as
``python tests/fuzz/fuzz_<target>.py [libFuzzer args] [corpus dirs]``; ``make fuzz`` runs them all.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

# Only vqa-rt's own modules are instrumented for coverage (numpy, onnx and the standard library are not).
INSTRUMENT = ("vqa_rt",)


def scratch_dir() -> str:
    """A private folder for harnesses whose parser reads a file (one per process, removed at exit); in memory
    (/dev/shm) where there is one: a file written per input on disk makes the fuzzer wait on I/O."""
    global _SCRATCH
    if _SCRATCH is None:
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        _SCRATCH = tempfile.TemporaryDirectory(prefix="vqa-rt-fuzz-", dir=shm)
    return _SCRATCH.name


_SCRATCH: tempfile.TemporaryDirectory | None = None


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def read_every_frame(open_reader: Callable[[], object]) -> None:
    """Open a reader and read all its frames; vqa-rt's typed errors are the expected answer to bad input."""
    from vqa_rt.errors import VqaRtError

    try:
        with open_reader() as reader:
            for _ in reader:
                pass
    except VqaRtError:
        pass


def main(test_one_input: Callable[[bytes], None]) -> None:
    """libFuzzer's loop over ``test_one_input`` with the command line's arguments."""
    import atheris

    os.environ.setdefault("VQA_RT_FFMPEG", "/nonexistent-ffmpeg-for-fuzzing")  # no harness may run ffmpeg
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
