"""How frames are chosen and converted before an engine sees them: one typed options model shared by
``score``, ``qpmap``, ``run``, ``serve`` and ``score-batch``.

Options are checked when they are made (:class:`~vqa_rt.errors.InputError`), so a bad value fails
before any video is opened. Which frames are taken (:class:`EngineSampling`: every Nth, N per
second, N evenly spaced) may differ per engine of one job; with none chosen, the engine's default
applies (every frame, or what the model's metadata names: NR models take 1 frame per second).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from vqa_rt.errors import InputError
from vqa_rt.runtime.checks import whole_number
from vqa_rt.runtime.frames.color import MATRICES, RANGES
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.video import VideoFormat

DEFAULT_RANGE = "limited"  # when neither the options nor the video (a Y4M tag) say
MAX_ANALYSIS_SIDE = 8192  # analysis sizes scale frames down for a model: at most 8K a side
MAX_BATCH_SIZE = 1024  # frames per inference call (a batch is held in memory)
NR_PROTOCOLS = ("mean-score", "mean-logits")  # how an NR model's frame (or clip) results make the video's score


@dataclass(frozen=True)
class EngineSampling:
    """Which frames an engine takes: at most one of ``frame_stride`` (every Nth), ``sample_fps`` (N per
    second of video) and ``sample_frames`` (N evenly spaced); none chosen: the engine's default."""

    frame_stride: int | None = None
    sample_fps: float | None = None
    sample_frames: int | None = None

    def __post_init__(self) -> None:
        FrameSampling(stride=self.frame_stride, rate=self.sample_fps, count=self.sample_frames)  # checks them

    @property
    def chosen(self) -> bool:
        return any(value is not None for value in asdict(self).values())

    def as_dict(self) -> dict[str, int | float]:
        """The values chosen, by field name (the form model metadata and ``run.json`` hold)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class FrameOptions:
    """How frames are selected and converted before inference.

    ``frame_skip`` frames are skipped, then at most ``max_frames`` are taken, chosen by at most
    one of ``frame_stride``, ``sample_fps`` and ``sample_frames`` (see :mod:`.sampling`; none: the
    engine's default). ``matrix`` and ``color_range`` convert YUV to RGB (range None: the video's
    Y4M tag, else limited); ``analysis_size`` (width, height) resizes frames for FR models and
    baselines; ``batch_size`` frames go to an engine per inference call.
    """

    matrix: str = "bt709"
    color_range: str | None = None
    analysis_size: tuple[int, int] | None = None
    frame_skip: int = 0
    frame_stride: int | None = None
    max_frames: int | None = None
    batch_size: int = 1
    sample_fps: float | None = None
    sample_frames: int | None = None
    nr_protocol: str = "mean-score"

    def __post_init__(self) -> None:
        if self.nr_protocol not in NR_PROTOCOLS:
            raise InputError(f"unknown NR protocol {self.nr_protocol!r} (known: {', '.join(NR_PROTOCOLS)})")
        if self.matrix not in MATRICES:
            raise InputError(f"unknown colour matrix {self.matrix!r} (known: {', '.join(MATRICES)})")
        if self.color_range is not None and self.color_range not in RANGES:
            raise InputError(f"unknown colour range {self.color_range!r} (known: {', '.join(RANGES)})")
        if self.analysis_size is not None:
            size = self.analysis_size
            if not isinstance(size, (tuple, list)) or len(size) != 2:
                raise InputError(f"analysis size must be a width and a height, got {size!r}")
            for what, value in zip(("width", "height"), size):
                if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                    raise InputError(f"analysis size must be a positive width and height, got {size}")
                whole_number(value, f"analysis size {what}", 1, MAX_ANALYSIS_SIDE)
        if isinstance(self.batch_size, int) and not isinstance(self.batch_size, bool) and self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")
        whole_number(self.batch_size, "batch size", 1, MAX_BATCH_SIZE)
        self.sampling()  # checks the skip, the frame cap and the sampling

    @property
    def engine_sampling(self) -> EngineSampling:
        return EngineSampling(self.frame_stride, self.sample_fps, self.sample_frames)

    def sampling(self) -> FrameSampling:
        """The frame selection these options describe."""
        return FrameSampling(self.frame_skip, self.frame_stride, self.sample_fps, self.sample_frames, self.max_frames)

    def with_sampling(self, sampling: EngineSampling) -> FrameOptions:
        """These options taking the frames ``sampling`` chooses instead (when it chooses any)."""
        return replace(self, **asdict(sampling)) if sampling.chosen else self

    def with_default_sampling(self, default: EngineSampling) -> FrameOptions:
        """These options, taking ``default``'s frames if they choose none themselves."""
        return self if self.engine_sampling.chosen else self.with_sampling(default)

    def color_range_of(self, fmt: VideoFormat) -> str:
        """The YUV range to convert ``fmt``'s frames with: these options', else the video's tag, else limited."""
        return self.color_range or fmt.color_range or DEFAULT_RANGE


ScoreOptions = FrameOptions  # the name ``vqa_rt.score``'s API has always used for these options
