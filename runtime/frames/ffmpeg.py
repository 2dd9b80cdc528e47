"""Finding an ffmpeg executable and checking which filters it was built with.

The first of: the ``VQA_RT_FFMPEG`` environment variable, the ffmpeg shipped by the
``imageio-ffmpeg`` wheel (``pip install 'vqa-rt[eval]'``), ``ffmpeg`` on the PATH.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from vqa_rt.errors import BackendUnavailableError

ENV_VAR = "VQA_RT_FFMPEG"


def find_ffmpeg() -> str:
    """Path of the ffmpeg to use; :class:`BackendUnavailableError` when there is none."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise BackendUnavailableError(f"{ENV_VAR}={configured}: not an executable file")
        return configured
    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        return imageio_ffmpeg.get_ffmpeg_exe()
    found = shutil.which("ffmpeg")
    if found is None:
        raise BackendUnavailableError(
            f"no ffmpeg found: pip install 'vqa-rt[eval]' (imageio-ffmpeg), put ffmpeg on the PATH or set {ENV_VAR}"
        )
    return found


@functools.cache
def filters(executable: str) -> frozenset[str]:
    """Names of the filters ``executable`` was built with."""
    try:
        listing = subprocess.run(
            [executable, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendUnavailableError(f"{executable}: cannot list its filters ({exc})") from None
    # Lines look like " TS psnr   VV->V   Calculate the PSNR ..." after a legend.
    return frozenset(parts[1] for line in listing.splitlines() if len(parts := line.split()) >= 3 and "->" in parts[2])


def ffmpeg_with_filter(name: str, needs: str) -> str:
    """The ffmpeg from :func:`find_ffmpeg`, checked to have filter ``name``; ``needs`` says how to get one."""
    executable = find_ffmpeg()
    if name not in filters(executable):
        raise BackendUnavailableError(f"{executable} has no '{name}' filter: {needs}")
    return executable
