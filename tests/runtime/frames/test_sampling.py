"""Frame sampling: every Nth frame, N per second of video, N evenly spaced; skip and max frames."""

from fractions import Fraction

import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sampling import FrameSampling


@pytest.mark.parametrize("sampling, total, fps, expected", [
    (FrameSampling(), 5, None, [0, 1, 2, 3, 4]),
    (FrameSampling(skip=1, stride=2), 8, None, [1, 3, 5, 7]),
    (FrameSampling(rate=1.0), 62, Fraction(25), [0, 25, 50]),
    (FrameSampling(rate=1.0), 60, Fraction(30000, 1001), [0, 29, 59]),
    (FrameSampling(rate=2.0, skip=3), 30, Fraction(10), [3, 8, 13, 18, 23, 28]),
    (FrameSampling(rate=50.0), 4, Fraction(25), [0, 1, 2, 3]),  # faster than the video: each frame once
    (FrameSampling(count=4), 100, None, [12, 37, 62, 87]),  # the middle of four equal runs
    (FrameSampling(count=3, skip=10), 40, None, [15, 25, 35]),
    (FrameSampling(count=10), 4, None, [0, 1, 2, 3]),
    (FrameSampling(rate=1.0, max_frames=2), 100, Fraction(25), [0, 25]),
])
def test_selected_indices(sampling, total, fps, expected):
    assert list(sampling.indices(total, fps)) == expected
    assert sampling.count_selected(total, fps) == len(expected)


def test_streams_of_unknown_length_are_sampled_lazily():
    indices = FrameSampling(rate=1.0).indices(None, Fraction(25))
    assert [next(indices) for _ in range(3)] == [0, 25, 50]
    assert FrameSampling(max_frames=7).count_selected(None, None) == 7


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride=2, rate=1.0), "choose one of frame stride, sampling rate"),
    (dict(count=0), "sample frames must be 1 or more"),
    (dict(rate=0.0), "sampling rate must be positive"),
    (dict(stride=0), "frame stride must be 1 or more"),
    (dict(skip=-1), "frame skip must be 0 or more"),
    (dict(rate=float("inf")), "sampling rate .* must be a finite number, got inf"),
    (dict(rate=float("nan")), "sampling rate .* must be a finite number, got nan"),
    (dict(rate=1e-9), "sampling rate must be at least 1e-06 frames per second"),
    (dict(rate="1"), "must be a finite number, got '1'"),
    (dict(stride=True), "frame stride must be a whole number, got True"),
    (dict(count=2.5), "sample frames must be a whole number, got 2.5"),
    (dict(max_frames=10**30), "max frames must be at most"),
])
def test_invalid_sampling(kwargs, message):
    with pytest.raises(InputError, match=message):
        FrameSampling(**kwargs)


def test_a_rate_far_above_the_videos_takes_every_frame_at_once():
    # stepping k * fps / rate one frame at a time would take ~1e298 steps per frame
    assert list(FrameSampling(rate=1e300).indices(5, Fraction(25))) == [0, 1, 2, 3, 4]


def test_rate_needs_a_frame_rate_and_count_a_frame_count():
    with pytest.raises(InputError, match="needs the video's frame rate.*--fps"):
        FrameSampling(rate=1.0).indices(100, None)
    with pytest.raises(InputError, match="need the video's frame count"):
        FrameSampling(count=5).indices(None, Fraction(25))
