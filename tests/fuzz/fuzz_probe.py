"""Fuzz the parsing of ffmpeg's output text for compressed inputs (``vqa_rt.runtime.frames.decode`` and
``.ffmpeg``) without running ffmpeg: ``subprocess`` in those modules is replaced by a stub that answers
with the fuzzed text.

Input: one selector byte, then ffmpeg's output. Selector modulo 3: 0, the probe's log (``_probe``: the
first video stream, its pixel format, the packet count, errors), with exit status 1 when bit 7 is set;
1, the ``-filters`` listing (``filters``); 2, the first line of a decoder's error log (``check_log``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import types

import atheris
from _fuzz_common import INSTRUMENT, main

with atheris.instrument_imports(include=INSTRUMENT):
    from vqa_rt.errors import VqaRtError
    from vqa_rt.runtime.frames import decode, ffmpeg

_answer = subprocess.CompletedProcess([], 0)


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    if kwargs.get("check") and _answer.returncode:
        raise subprocess.CalledProcessError(_answer.returncode, command)
    return _answer


_STUB = types.SimpleNamespace(run=_run, DEVNULL=subprocess.DEVNULL, PIPE=subprocess.PIPE,
                              SubprocessError=subprocess.SubprocessError, TimeoutExpired=subprocess.TimeoutExpired,
                              CalledProcessError=subprocess.CalledProcessError)
decode.subprocess = _STUB
ffmpeg.subprocess = _STUB
_errors = tempfile.TemporaryFile()
_decoder = object.__new__(decode._Decoder)
_decoder._errors = _errors


def TestOneInput(data: bytes) -> None:
    global _answer
    if not data:
        return
    selector, text = data[0], data[1:]
    try:
        if selector % 3 == 0:
            _answer = subprocess.CompletedProcess([], 1 if selector & 128 else 0, stdout=b"", stderr=text)
            decode._probe("ffmpeg", "fuzz.mp4")
        elif selector % 3 == 1:
            _answer = subprocess.CompletedProcess([], 0, stdout=text.decode(errors="replace"), stderr="")
            ffmpeg.filters.__wrapped__("ffmpeg")
        else:
            _errors.seek(0)
            _errors.truncate()
            _errors.write(text)
            _errors.flush()
            _decoder.check_log("fuzz.mp4")
    except VqaRtError:
        pass


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
