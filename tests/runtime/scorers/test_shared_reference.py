"""The reference side of the luma baselines computed once per frame for a ladder's renditions, and the
results still those of each pair alone."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vqa_rt.runtime.frames.sources import VideoInput
from vqa_rt.runtime.frames.synthetic import make_test_clip
from vqa_rt.runtime.pipeline.ladder import score_ladder
from vqa_rt.runtime.pipeline.score import score
from vqa_rt.runtime.scorers.baselines import luma, metrics
from vqa_rt.runtime.scorers.baselines.shared_reference import SharedReference

W, H, FRAMES = 192, 176, 6


def test_each_frame_is_computed_once_by_concurrent_users_and_then_let_go():
    users, frames = 4, 30
    shared, calls, lock = SharedReference(users), [], threading.Lock()

    def compute(index: int) -> int:
        with lock:
            calls.append(index)
        return index * index

    def rendition(_: int) -> list[int]:
        return [shared.get(index, lambda index=index: compute(index)) for index in range(frames)]

    with ThreadPoolExecutor(users) as pool:
        results = list(pool.map(rendition, range(users)))
    assert sorted(calls) == list(range(frames))
    assert results == [[index * index for index in range(frames)]] * users
    assert len(shared) == 0


def test_a_frame_is_held_until_every_user_fetched_it():
    shared = SharedReference(3)
    shared.get(0, lambda: "a")
    shared.get(0, lambda: "b")
    assert len(shared) == 1
    assert shared.get(0, lambda: "c") == "a"
    assert len(shared) == 0


def test_planes_measured_against_a_reference_side_equal_the_pair_alone():
    rng = np.random.default_rng(3)
    x = rng.random((180, 200), np.float32) * 255
    y = np.clip(x + rng.standard_normal(x.shape).astype(np.float32) * 6, 0, 255)
    assert metrics.ssim_against(metrics.local_statistics(x), y) == metrics.ssim(x, y)
    assert metrics.ms_ssim_against(metrics.ms_ssim_reference(x), y) == metrics.ms_ssim(x, y)


@pytest.mark.parametrize("engine", ["ssim", "ms-ssim"])
def test_a_ladder_computes_the_reference_side_once_per_frame(engine, tmp_path, monkeypatch):
    reference, renditions = str(tmp_path / "ref.yuv"), []
    for quality in (15, 40, 80):
        renditions.append(VideoInput(str(tmp_path / f"q{quality}.yuv"), W, H))
        make_test_clip(reference, renditions[-1].path, W, H, FRAMES, seed=2, quality=quality)
    spec, calls = luma.LUMA_METRICS[engine], []

    def counted(plane):
        calls.append(plane.shape)
        return spec.reference(plane)

    monkeypatch.setitem(luma.LUMA_METRICS, engine, dataclasses.replace(spec, reference=counted))
    together = score_ladder(engine, VideoInput(reference, W, H), renditions)
    assert len(calls) == FRAMES
    for result, rendition in zip(together, renditions):
        alone = score(engine, VideoInput(reference, W, H), rendition)
        assert [f["metrics"] for f in result["frames"]] == [f["metrics"] for f in alone["frames"]]
