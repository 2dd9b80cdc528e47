"""How an NR model's per-frame (or per-clip) results make one score for the video.

- ``mean-score`` (default): the mean of the frame scores. The score is linear in the level
  probabilities, so this is also the score of the mean level probabilities.
- ``mean-logits``: Q-Align's per-frame video protocol (``q_align/evaluate/iqa4vqa_eval.py``): the
  level logits are averaged over frames, then the softmax and the level weights give the score.

A clip engine (exported with ``frames`` > 1, Q-Align's joint video prompt of
``q_align/evaluate/scorer.py``'s ``QAlignVideoScorer``) scores clips of that many frames in one
prompt; every frame of a clip carries its clip's results, so both protocols pool over clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SOURCES = {
    "mean-score": "mean of the frame (or clip) scores = score of the mean level probabilities",
    "mean-logits": "Q-Align's per-frame protocol: mean level logits, then softmax and the level weights",
}


def video_score(protocol: str, frames: list[dict[str, float]], metric: str, levels: list[dict[str, Any]],
                score_range: tuple[float, float]) -> dict[str, Any]:
    """``{"protocol", "method", "score", "level_probs"}`` from the frames' metrics (the score ``metric``,
    ``p_<word>``, ``logit_<word>``); ``levels`` as the model's metadata lists them (word, weight)."""
    words = [level["word"] for level in levels]
    if protocol == "mean-logits":
        logits = np.mean([[frame[f"logit_{word}"] for word in words] for frame in frames], axis=0, dtype=np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        low, high = score_range
        score = low + (high - low) * float(probs @ np.array([level["weight"] for level in levels]))
    else:
        probs = np.mean([[frame[f"p_{word}"] for word in words] for frame in frames], axis=0, dtype=np.float64)
        score = float(np.mean([frame[metric] for frame in frames], dtype=np.float64))
    return {"protocol": protocol, "method": SOURCES[protocol], "score": score,
            "level_probs": dict(zip(words, map(float, probs)))}
