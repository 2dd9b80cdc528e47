"""Shared fixtures: one exported FR and QP-map model per session, test clips, the CLI, ffmpeg."""

from __future__ import annotations

import csv

import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Exported:
    path: str
    loaded: object  # vqa_rt.export.checkpoint.LoadedModel
    report: object  # vqa_rt.export.validate.ValidationReport


def _export_seeded(kind: str, tmp_path_factory) -> Exported:
    from vqa_rt.export.checkpoint import random_init
    from vqa_rt.export.onnx_export import export_onnx
    from vqa_rt.export.spec import get_spec

    spec = get_spec(kind)
    loaded = random_init(spec, seed=0)
    path = str(tmp_path_factory.mktemp(kind) / f"{kind}.onnx")
    return Exported(path, loaded, export_onnx(spec, loaded, path))


@pytest.fixture(scope="session")
def fr_export(tmp_path_factory) -> Exported:
    """The default FR model with seeded (untrained) weights, exported and validated once."""
    return _export_seeded("fr", tmp_path_factory)


@pytest.fixture(scope="session")
def qpmap_export(tmp_path_factory) -> Exported:
    """The default QP-map model with seeded (untrained) weights, exported and validated once."""
    return _export_seeded("qpmap", tmp_path_factory)


@pytest.fixture(scope="session")
def write_csv():
    """Write a list of dicts as a CSV with a header; returns the path as a string."""

    def write(path, rows: list[dict]) -> str:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    return write


@dataclass
class Clip:
    ref: str
    dist: str
    width: int
    height: int
    frames: int


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Clip:
    """A 6-frame 128x96 yuv420p reference and its JPEG-degraded copy."""
    from vqa_rt.runtime.synthetic import make_test_clip

    folder = tmp_path_factory.mktemp("clip")
    ref, dist = str(folder / "ref.yuv"), str(folder / "dist.yuv")
    make_test_clip(ref, dist, 128, 96, 6, seed=3, quality=20)
    return Clip(ref, dist, 128, 96, 6)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """Path of the ffmpeg shipped by the imageio-ffmpeg wheel."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def run_ffmpeg(ffmpeg):
    """Run the bundled ffmpeg quietly; raises if it fails."""

    def run(*args: str) -> None:
        subprocess.run([ffmpeg, "-v", "error", "-y", *args], check=True)

    return run


@pytest.fixture(scope="session")
def cli():
    """Run ``vqa-rt`` in a fresh interpreter, as a user would; returns the CompletedProcess."""

    def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vqa_rt.cli", *map(str, args)], input=stdin, capture_output=True, timeout=300
        )

    return run
