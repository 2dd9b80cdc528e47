"""vqa-rt: compiled inference for video-quality networks."""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("vqa-rt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_API = {  # name -> module; loaded when first used
    "score": "vqa_rt.runtime.pipeline.score",
    "score_ladder": "vqa_rt.runtime.pipeline.ladder",
    "ScoreOptions": "vqa_rt.runtime.frames.options",
    "FrameOptions": "vqa_rt.runtime.frames.options",
    "EngineSampling": "vqa_rt.runtime.frames.options",
    "VideoInput": "vqa_rt.runtime.frames.sources",
    "qp_maps": "vqa_rt.runtime.pipeline.qpmap",
    "write_qp_maps": "vqa_rt.runtime.pipeline.qpmap",
    "QPConversion": "vqa_rt.runtime.qpmaps.conversion",
    "run_job": "vqa_rt.runtime.pipeline.job",
    "JobEngines": "vqa_rt.runtime.pipeline.job",
    "JobOptions": "vqa_rt.runtime.pipeline.job",
    "run_batch": "vqa_rt.runtime.pipeline.batch",
    "RaySettings": "vqa_rt.runtime.pipeline.ray_batch",
    "WorkerShape": "vqa_rt.runtime.pipeline.ray_cluster",
}


def __getattr__(name: str):
    """Lazy top-level API, so ``import vqa_rt`` loads neither ONNX Runtime nor OpenCV."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vqa_rt' has no attribute {name!r}")
