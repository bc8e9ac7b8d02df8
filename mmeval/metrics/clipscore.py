"""CLIPScore and RefCLIPScore (Hessel et al., EMNLP 2021), as pure functions over embeddings.

- CLIP-S(c, v) = w * max(cos(c, v), 0), with w = 2.5, per image; the corpus score is the mean.
- RefCLIP-S(c, R, v) = harmonic mean of CLIP-S(c, v) and max(max_r cos(c, r), 0) over the references R.
The authors' code prefixes every caption (candidates and references) with "A photo depicts" before
encoding; the benchmark does the same by default (`clipscore_prefix`). Scores depend on the scorer model,
so reports name it.
"""

from __future__ import annotations

import numpy as np
import torch

W = 2.5


def clip_s(image_emb: torch.Tensor, caption_emb: torch.Tensor, w: float = W) -> np.ndarray:
    """Per-image CLIP-S from L2-normalised image and caption embeddings (row i belongs to image i)."""
    cosine = (image_emb.float() * caption_emb.float()).sum(-1)
    return (w * cosine.clamp(min=0)).cpu().numpy().astype(np.float64)


def ref_clip_s(clip_scores: np.ndarray, caption_emb: torch.Tensor, ref_emb: torch.Tensor,
               ref_owner: list[int] | np.ndarray) -> np.ndarray:
    """Per-image RefCLIP-S: harmonic mean of CLIP-S and the best caption-reference cosine (clipped at 0).

    `ref_owner[j]` is the image (row of `caption_emb`) that reference j belongs to; an image with no
    reference gets NaN.
    """
    owner = torch.as_tensor(np.asarray(ref_owner), dtype=torch.long, device=ref_emb.device)
    cosine = (ref_emb.float() * caption_emb.float()[owner]).sum(-1)
    best = torch.full((caption_emb.shape[0],), -torch.inf, device=ref_emb.device)
    best = best.scatter_reduce(0, owner, cosine, reduce="amax")
    best_np = best.cpu().numpy().astype(np.float64)
    has_ref = np.isfinite(best_np)
    ref_part = np.clip(np.where(has_ref, best_np, 0.0), 0, None)
    total = clip_scores + ref_part
    with np.errstate(invalid="ignore", divide="ignore"):
        harmonic = np.where(total > 0, 2 * clip_scores * ref_part / total, 0.0)
    return np.where(has_ref, harmonic, np.nan)
