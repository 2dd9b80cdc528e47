"""The one options model: checked when made, per-engine sampling, defaults, the colour-range fallback."""

from __future__ import annotations

from fractions import Fraction

import pytest

import vqa_rt
from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.options import EngineSampling, FrameOptions
from vqa_rt.runtime.frames.video import VideoFormat


@pytest.mark.parametrize("values, message", [
    (dict(matrix="bt2020"), "unknown colour matrix 'bt2020'"),
    (dict(color_range="tv"), "unknown colour range 'tv'"),
    (dict(analysis_size=(0, 64)), "analysis size must be a positive width and height"),
    (dict(batch_size=0), "batch size must be at least 1, got 0"),
    (dict(frame_skip=-1), "frame skip must be 0 or more"),
    (dict(max_frames=0), "max frames must be 1 or more"),
    (dict(frame_stride=0), "frame stride must be 1 or more"),
    (dict(sample_fps=0.0), "sampling rate must be positive"),
    (dict(frame_stride=2, sample_frames=4), "choose one of frame stride"),
    (dict(analysis_size=(100000, 100000)), "analysis size width must be at most 8192"),
    (dict(analysis_size=(64,)), "analysis size must be a width and a height"),
    (dict(analysis_size=(64, "x")), "analysis size height must be a whole number"),
    (dict(batch_size="x"), "batch size must be a whole number, got 'x'"),
    (dict(batch_size=True), "batch size must be a whole number, got True"),
    (dict(batch_size=100000), "batch size must be at most 1024"),
    (dict(sample_fps=float("inf")), "must be a finite number, got inf"),
])
def test_bad_options_fail_when_made(values, message):
    with pytest.raises(InputError, match=message):
        FrameOptions(**values)


def test_engine_sampling_is_checked_and_chosen_only_when_given():
    with pytest.raises(InputError, match="choose one of frame stride"):
        EngineSampling(frame_stride=2, sample_fps=1.0)
    assert not EngineSampling().chosen and EngineSampling().as_dict() == {}
    assert EngineSampling(sample_fps=2.0).as_dict() == {"sample_fps": 2.0}


def test_sampling_of_an_engine_replaces_the_options_and_defaults_apply_only_when_none_is_chosen():
    options = FrameOptions(frame_skip=3, max_frames=5, batch_size=2)
    strided = options.with_sampling(EngineSampling(frame_stride=2))
    assert (strided.frame_stride, strided.frame_skip, strided.max_frames, strided.batch_size) == (2, 3, 5, 2)
    assert options.with_sampling(EngineSampling()) == options
    per_second = EngineSampling(sample_fps=1.0)
    assert options.with_default_sampling(per_second).sample_fps == 1.0
    assert strided.with_default_sampling(per_second) == strided
    assert list(strided.sampling().indices(20, Fraction(25))) == [3, 5, 7, 9, 11]


def test_colour_range_comes_from_the_options_then_the_video_then_limited():
    tagged = VideoFormat(64, 64, 8, None, "full", "yuv420p")
    untagged = VideoFormat(64, 64, 8, None, None, "yuv420p")
    assert FrameOptions().color_range_of(tagged) == "full"
    assert FrameOptions().color_range_of(untagged) == "limited"
    assert FrameOptions(color_range="limited").color_range_of(tagged) == "limited"


def test_the_scoring_api_name_is_the_same_model():
    assert vqa_rt.ScoreOptions is FrameOptions is vqa_rt.FrameOptions
