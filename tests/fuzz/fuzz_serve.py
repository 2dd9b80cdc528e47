"""Fuzz what ``vqa-rt serve`` reads from a client (``vqa_rt.runtime.serve``): the JSON job header line
(``read_job_header`` / ``parse_job``, then ``check_job``), then the FRAM/DONE messages, split into each
video's frames and planes as the job reads them. The server offers FR (psnr) and QP maps (activity).

Input: the bytes a client sends on the connection.
"""

from __future__ import annotations

import io
import sys

import atheris
from _fuzz_common import INSTRUMENT, main

with atheris.instrument_imports(include=INSTRUMENT):
    from vqa_rt.errors import VqaRtError
    from vqa_rt.runtime.frames.sources import VideoInput
    from vqa_rt.runtime.frames.video import split_planes
    from vqa_rt.runtime.pipeline.job import JobEngines, check_job
    from vqa_rt.runtime.serve.protocol import HEADER_LIMIT
    from vqa_rt.runtime.serve.server import _Messages, read_job_header

SERVED = JobEngines(fr="psnr", qp_method="activity")
MAX_FRAMES = 64


def TestOneInput(data: bytes) -> None:
    rfile = io.BytesIO(data)
    try:
        job = read_job_header(rfile.readline(HEADER_LIMIT), SERVED)
        check_job(job.engines, job.options, {role: VideoInput(f"<{role}>") for role in job.roles})
        messages = _Messages(rfile, job.roles, job.fmt)
        for index in range(MAX_FRAMES):
            for role in job.roles:
                buf = messages.read(role, index)
                if buf is None:
                    return
                split_planes(buf, job.fmt, index, f"<{role}>")
    except VqaRtError:
        pass


if __name__ == "__main__":
    main(TestOneInput)
    sys.exit(0)
