"""The non-learned baseline: block high-pass activity -> quantization step.

In the spirit of the perceptual QP adaptation of VTM/VVenC (XPSNR-style, the
paper's PerceptQPA baseline): texture masks coding noise, so busy blocks can take
coarser quantization and flat blocks need finer.

For each 16x16 block k of the luma plane (scaled to 8-bit code values, padded on
the bottom/right to whole blocks by edge replication, like the learned model)::

    a_k  = mean over the block of |H * Y|,  H = [[-1, -2, -1], [-2, 12, -2], [-1, -2, -1]]
    QS_k = max(a_k, ACTIVITY_FLOOR) ** ACTIVITY_EXPONENT          (exponent 1/2)

H is the spatial high-pass of XPSNR. The square root is a simple masking model
(the visibility threshold of coding noise grows sub-linearly with local activity);
the floor keeps flat blocks from claiming unbounded rate. QS_k then goes through the
same conversion as the model's output (:mod:`vqa_rt.runtime.qpmaps.conversion`), so
with beta = -1.367 and slope 1 a block gets dQP ~ 2.05 * log2(a_k / a_frame) before
clipping, where a_frame = (mean_j a_j ** -1/2) ** -2: a QP offset proportional
to the log of the block's activity relative to the frame's, the form of VVenC's
perceptual QPA.
"""

from __future__ import annotations

import cv2
import numpy as np

from vqa_rt.runtime.qpmaps.conversion import BLOCK

HIGH_PASS = np.array([[-1, -2, -1], [-2, 12, -2], [-1, -2, -1]], np.float32)
ACTIVITY_FLOOR = 4.0  # in 8-bit code values (|H * Y| of a sub-code-value texture)
ACTIVITY_EXPONENT = 0.5


def block_activity(luma: np.ndarray, bit_depth: int) -> np.ndarray:
    """a_k: mean absolute high-pass response per 16x16 block, shape (ceil(H/16), ceil(W/16))."""
    height, width = luma.shape
    scaled = luma.astype(np.float32) * np.float32(2.0 ** (8 - bit_depth))
    padded = cv2.copyMakeBorder(scaled, 0, (-height) % BLOCK, 0, (-width) % BLOCK, cv2.BORDER_REPLICATE)
    response = np.abs(cv2.filter2D(padded, -1, HIGH_PASS, borderType=cv2.BORDER_REPLICATE))
    rows, cols = padded.shape[0] // BLOCK, padded.shape[1] // BLOCK
    return response.reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))


def activity_qs(luma: np.ndarray, bit_depth: int) -> np.ndarray:
    """QS_k = max(a_k, ACTIVITY_FLOOR) ** ACTIVITY_EXPONENT for every 16x16 block of the luma plane."""
    return np.maximum(block_activity(luma, bit_depth), ACTIVITY_FLOOR) ** ACTIVITY_EXPONENT
