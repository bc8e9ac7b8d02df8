"""Video perturbations of a clip's sampled frames (uint8 T x H x W x 3 -> same shape): the temporal faults of
a real stream (stalls that repeat frames, frames out of order, a clip played backwards), and every registered
image corruption applied frame by frame (same name as the image one, e.g. video `gaussian_noise`).

Temporal perturbations only move whole frames: each is an index map `source_of(T, severity, rng) -> (T,)` with
`perturbed[t] = frames[source_of[t]]`. Severity s changes k = floor(SHARE[s] x T + 0.5) frame slots (at least 1
for frame_drop, 2 for the others, at most T - 1 for frame_drop: the first frame is never dropped):

| severity | 1 | 2 | 3 | 4 | 5 |
| --- | --- | --- | --- | --- | --- |
| frame_drop: DROP_SHARE | 0.10 | 0.25 | 0.40 | 0.55 | 0.70 |
| k at T = 8 | 1 | 2 | 3 | 4 | 6 |
| temporal_shuffle, frame_reverse: MOVE_SHARE | 0.25 | 0.40 | 0.55 | 0.75 | 1.00 |
| k at T = 8 | 2 | 3 | 4 | 6 | 8 |

Because they move whole frames they commute with a model's per-frame preprocessing, so the video loader may
apply them to frames it already preprocessed (`TEMPORAL`, `source_of`). Written by hand: no maintained library
perturbs sampled frame sequences (vidaug / torchvision transforms augment training clips, not index maps).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import numpy as np

from mmeval.perturb import PERTURBATIONS, register

DROP_SHARE = (0.10, 0.25, 0.40, 0.55, 0.70)
MOVE_SHARE = (0.25, 0.40, 0.55, 0.75, 1.00)
IndexMap = Callable[[int, int, np.random.Generator], np.ndarray]


def changed_slots(n_frames: int, severity: int, share: tuple[float, ...], most: int) -> int:
    """k: how many of `n_frames` slots severity `severity` changes (`share` of them, at least 1, at most `most`)."""
    return max(0, min(most, max(1, math.floor(share[severity - 1] * n_frames + 0.5))))


def drop_map(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """frame_drop: k = share x T frames (never the first) are lost; each lost slot shows the latest kept frame,
    as a stalled stream freezes on it. DROP_SHARE = 0.10 / 0.25 / 0.40 / 0.55 / 0.70 of the frames."""
    k = changed_slots(n_frames, severity, DROP_SHARE, n_frames - 1)
    dropped = np.zeros(n_frames, dtype=bool)
    dropped[1 + rng.choice(n_frames - 1, size=k, replace=False)] = True
    source = np.arange(n_frames)
    for t in range(1, n_frames):
        if dropped[t]:
            source[t] = source[t - 1]
    return source


def shuffle_map(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """temporal_shuffle: k = share x T frame slots, chosen at random, take each other's frames in one random cycle,
    so every chosen slot shows another frame. MOVE_SHARE = 0.25 / 0.40 / 0.55 / 0.75 / 1.00 (all)."""
    k = max(2, changed_slots(n_frames, severity, MOVE_SHARE, n_frames)) if n_frames >= 2 else 0
    chosen = rng.choice(n_frames, size=k, replace=False)  # in random order: the cycle's order
    source = np.arange(n_frames)
    source[chosen] = np.roll(chosen, -1)
    return source


def reverse_map(n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """frame_reverse: one run of k = share x T consecutive frames (k >= 2) at a random start played backwards (the
    middle frame of an odd run stays); severity 5 plays the whole clip backwards. MOVE_SHARE as temporal_shuffle."""
    k = max(2, changed_slots(n_frames, severity, MOVE_SHARE, n_frames)) if n_frames >= 2 else 0
    start = int(rng.integers(n_frames - k + 1)) if k else 0
    source = np.arange(n_frames)
    source[start : start + k] = source[start : start + k][::-1].copy()
    return source


TEMPORAL: dict[str, IndexMap] = {"frame_drop": drop_map, "temporal_shuffle": shuffle_map, "frame_reverse": reverse_map}


def source_of(name: str, n_frames: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The index map of temporal perturbation `name`: perturbed frame t is frame `source_of[t]` of the clip."""
    return TEMPORAL[name](n_frames, severity, rng)


def _temporal(index_map: IndexMap) -> Callable[[np.ndarray, int, np.random.Generator], np.ndarray]:
    def perturb(frames: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        return frames[index_map(len(frames), severity, rng)]

    perturb.__doc__ = index_map.__doc__
    return perturb


def per_frame(corrupt: Callable) -> Callable[[np.ndarray, int, np.random.Generator], np.ndarray]:
    """An image corruption (uint8 H x W x 3) applied to every frame with the clip's one generator (fresh noise
    per frame, as a noisy camera gives)."""

    def perturb(frames: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([np.asarray(corrupt(frame, severity, rng), dtype=np.uint8) for frame in frames])

    perturb.__doc__ = f"every frame: {corrupt.__doc__ or corrupt.__name__}"
    return perturb


for _name, _map in TEMPORAL.items():
    register("video", _name, _temporal(_map))

try:  # the image corruptions (ImageNet-C) register on import; where they exist, each is one per-frame video one
    importlib.import_module("mmeval.perturb.image")
except ModuleNotFoundError as exc:
    if exc.name != "mmeval.perturb.image":
        raise
for _name, _fn in sorted(PERTURBATIONS.get("image", {}).items()):
    if _name not in PERTURBATIONS["video"]:
        register("video", _name, per_frame(_fn))
