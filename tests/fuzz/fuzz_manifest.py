"""Fuzz the score-batch manifest reader (``vqa_rt.runtime.pipeline.manifest.read_manifest``, and the CSV
table reader under it). Input: the manifest file's bytes."""

from __future__ import annotations

import os
import sys

import atheris
from _fuzz_common import INSTRUMENT, main, scratch_dir, write

with atheris.instrument_imports(include=INSTRUMENT):
    from vqa_rt.errors import VqaRtError
    from vqa_rt.runtime.pipeline.manifest import read_manifest


def TestOneInput(data: bytes) -> None:
    path = write(os.path.join(scratch_dir(), "manifest.csv"), data)
    try:
        read_manifest(path)
    except VqaRtError:
        pass


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
