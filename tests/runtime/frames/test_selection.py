"""Frame pairing (selection, previous frames, mismatches), as a two-video branch of the pipeline is handed
its (reference, distorted) pairs."""

from __future__ import annotations

import io
import sys
import types

import pytest

from vqa_rt.errors import InputError
from vqa_rt.runtime.frames.sampling import FrameSampling
from vqa_rt.runtime.frames.sources import open_video
from vqa_rt.runtime.pipeline.fanout import Branch, run_pipeline

W, H = 8, 4


def clip_bytes(n, base=0, width=W, height=H):
    """Frames whose every sample is ``base + index`` (so frames identify themselves)."""
    return b"".join(bytes([base + i]) * (width * height * 3 // 2) for i in range(n))


def open_pair(tmp_path, ref_frames, dist_frames, dist_size=(W, H)):
    (tmp_path / "ref.yuv").write_bytes(clip_bytes(ref_frames))
    (tmp_path / "dist.yuv").write_bytes(clip_bytes(dist_frames, 100, *dist_size))
    return (open_video(str(tmp_path / "ref.yuv"), W, H),
            open_video(str(tmp_path / "dist.yuv"), *dist_size))


class Pairs(Branch):
    """A branch that takes (reference, distorted) pairs and keeps them, as an FR engine is handed them."""

    name, roles = "pairs", ("reference", "distorted")

    def __init__(self, sampling: FrameSampling):
        self._sampling, self.pairs = sampling, []

    def sampling(self):
        return self._sampling

    def start(self, formats, total):
        pass

    def prepare(self, item):
        return item

    def infer(self, indices, prepared):
        return list(zip(indices, prepared))

    def record(self, index, output):
        self.pairs.append(output)

    def close(self, error):
        pass

    @property
    def results(self):
        return {"frames": self.pairs}

    def run_entry(self):
        return {}


def paired_frames(ref, dist, sampling=FrameSampling(), kept=None):
    """The pairs the pipeline hands a two-video branch; ``kept`` (a list) gets them even when the run fails."""
    branch = Pairs(sampling)
    if kept is not None:
        branch.pairs = kept
    run_pipeline({"reference": ref, "distorted": dist}, [branch])
    return branch.pairs


def summary(pairs):
    """(index, ref, dist, ref_prev, dist_prev) as the frames' sample values."""
    return [(p.index, int(p.ref.y[0, 0]), int(p.dist.y[0, 0]), int(p.ref_prev.y[0, 0]),
             int(p.dist_prev.y[0, 0])) for p in pairs]


@pytest.mark.parametrize("skip,stride,max_frames,indices", [
    (0, 1, None, list(range(10))),
    (2, 3, None, [2, 5, 8]),
    (1, 4, 2, [1, 5]),
    (0, 2, 100, [0, 2, 4, 6, 8]),
    (9, 1, None, [9]),
])
def test_selection_and_previous_frames(tmp_path, skip, stride, max_frames, indices):
    ref, dist = open_pair(tmp_path, 10, 10)
    pairs = summary(paired_frames(ref, dist, FrameSampling(skip, stride, max_frames=max_frames)))
    # The previous frame is the true previous source frame, or the frame itself at 0.
    assert pairs == [(i, i, 100 + i, max(i - 1, 0), 100 + max(i - 1, 0)) for i in indices]


def test_first_pair_of_stream_uses_itself_as_previous(tmp_path):
    first = paired_frames(*open_pair(tmp_path, 3, 3))[0]
    assert first.ref_prev is first.ref and first.dist_prev is first.dist


def test_resolution_mismatch(tmp_path):
    ref, dist = open_pair(tmp_path, 2, 2, dist_size=(4, 4))
    with pytest.raises(InputError) as e:
        paired_frames(ref, dist)
    assert "is 8x4 but distorted" in str(e.value) and "is 4x4: resolutions must match" \
        in str(e.value)


def test_bit_depth_may_differ(tmp_path):
    (tmp_path / "ref.yuv").write_bytes(clip_bytes(2))
    (tmp_path / "dist.yuv").write_bytes(clip_bytes(4))  # read as 2 frames of 10-bit
    ref = open_video(str(tmp_path / "ref.yuv"), W, H)
    dist = open_video(str(tmp_path / "dist.yuv"), W, H, "yuv420p10le")
    assert [p.dist.bit_depth for p in paired_frames(ref, dist)] == [10, 10]


def test_frame_count_mismatch(tmp_path):
    with pytest.raises(InputError) as e:
        paired_frames(*open_pair(tmp_path, 30, 29))
    assert str(e.value) == ("reference has 30 frames, distorted has 29: they must match "
                            "(or limit frames with --max-frames)")
    with pytest.raises(InputError, match="reference has 30 frames, distorted has 29"):
        paired_frames(*open_pair(tmp_path, 30, 29), FrameSampling(5, 2, max_frames=13))  # needs frame 29
    pairs = list(paired_frames(*open_pair(tmp_path, 30, 29), FrameSampling(5, 2, max_frames=12)))
    assert [p.index for p in pairs] == list(range(5, 28, 2))


def test_skip_past_the_end(tmp_path):
    with pytest.raises(InputError, match="frame skip 10 leaves no frames"):
        paired_frames(*open_pair(tmp_path, 10, 10), FrameSampling(skip=10))


@pytest.mark.parametrize("args,match", [((-1, 1, None), "frame skip must be 0 or more"),
                                        ((0, 0, None), "frame stride must be 1 or more"),
                                        ((0, 1, 0), "max frames must be 1 or more")])
def test_invalid_selection(tmp_path, args, match):
    with pytest.raises(InputError, match=match):
        paired_frames(*open_pair(tmp_path, 2, 2), FrameSampling(args[0], args[1], max_frames=args[2]))


def test_stream_ending_early(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(
        buffer=io.BufferedReader(io.BytesIO(clip_bytes(4, 100)))))
    (tmp_path / "ref.yuv").write_bytes(clip_bytes(6))
    ref, dist = open_video(str(tmp_path / "ref.yuv"), W, H), open_video("-", W, H)
    pairs = []  # counts unknown: checked while reading
    with pytest.raises(InputError, match="distorted <stdin> ended at frame 4 while the "
                                         "reference video continues"):
        paired_frames(ref, dist, kept=pairs)
    assert [pair.index for pair in pairs] == [0, 1, 2, 3]


def test_stream_of_unknown_length_stops_at_max_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(
        buffer=io.BufferedReader(io.BytesIO(clip_bytes(4, 100)))))
    (tmp_path / "ref.yuv").write_bytes(clip_bytes(9))
    pairs = paired_frames(open_video(str(tmp_path / "ref.yuv"), W, H), open_video("-", W, H),
                          FrameSampling(max_frames=3))
    assert [p.index for p in pairs] == [0, 1, 2]
