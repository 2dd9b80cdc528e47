"""Frames as an NR model's image processor expects them: RGB, made square, resized, normalised.

The model's metadata (``preprocess``) names the square size, the resize mode and the
normalisation, taken at export from the checkpoint's image processor config:

- ``pad``: pad to a square with the mean colour, then resize (LLaVA-1.5, Q-Align);
- ``crop``: resize the shortest side to the size, then crop the centre (CLIP);
- ``stretch``: resize to the square, ignoring the aspect ratio.

The frame is resized once, during the YUV->RGB conversion, straight to the size its
content has in the square (area averaging when shrinking, bilinear when enlarging);
Hugging Face's processors resize with PIL's bicubic filter, so values differ slightly
at edges and fine detail. The padding colour is the mean rounded down to 8 bits, as
in Hugging Face's LLaVA processor.
"""

from __future__ import annotations

import numpy as np

from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb
from vqa_rt.runtime.frames.options import DEFAULT_RANGE
from vqa_rt.runtime.frames.video import Frame


class NRPreprocessor:
    """YUV frame -> normalised (3, S, S) float32 RGB, as the model's ``preprocess`` metadata says."""

    def __init__(self, preprocess: dict, matrix: str = "bt709", color_range: str = DEFAULT_RANGE):
        self.size = int(preprocess["size"][0])
        self.mode = preprocess["resize"]
        self.mean = np.asarray(preprocess["mean"], np.float32)
        self.std = np.asarray(preprocess["std"], np.float32)
        self.pad_rgb = np.floor(self.mean * 255) / 255
        self.matrix, self.color_range = matrix, color_range

    def content_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the frame is resized to before it is padded or cropped to the square."""
        if self.mode == "stretch":
            return self.size, self.size
        if self.mode == "pad":
            scale = self.size / max(width, height)
            return max(1, round(width * scale)), max(1, round(height * scale))
        scale = self.size / min(width, height)  # the long side rounds down, as Hugging Face's processors do
        return max(self.size, int(width * scale)), max(self.size, int(height * scale))

    def __call__(self, frame: Frame) -> np.ndarray:
        height, width = frame.y.shape
        content_w, content_h = self.content_size(width, height)
        rgb = yuv_to_rgb(frame, self.matrix, self.color_range, (content_w, content_h))
        if self.mode == "pad":
            top, left = (self.size - content_h) // 2, (self.size - content_w) // 2
            square = np.empty((3, self.size, self.size), np.float32)
            square[:] = self.pad_rgb[:, None, None]
            square[:, top:top + content_h, left:left + content_w] = rgb
        else:  # centre crop (nothing to crop after a stretch)
            top, left = (content_h - self.size) // 2, (content_w - self.size) // 2
            square = np.ascontiguousarray(rgb[:, top:top + self.size, left:left + self.size])
        return normalize(square, self.mean, self.std)
