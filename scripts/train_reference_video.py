"""Train the reference video model (mmeval/assets/shapes-video) on the shapes_video train split, and measure it.

    nice -n 10 python scripts/train_reference_video.py            # writes mmeval/assets/shapes-video
    python scripts/train_reference_video.py --out /tmp/v --check  # a rerun: same weights, bit for bit

The base image tower (mmeval/assets/shapes-clip) is frozen, so each training clip's frame features are computed
once (8 frames, uniform sampling, through the same PyAV decoder as evaluation). Trained: the text tower
(initialised from the base's, new words appended to its vocabulary) and the temporal head, with three losses:
CLIP's symmetric InfoNCE over (video, one of its captions); a 4-way choice between the clip's motion query and
its three other-direction counterfactuals; and, for the retrieval answerer, a choice among "<question> <answer>"
texts over every candidate answer. The same recipe is trained a second time with `temporal: mean` (the
order-blind ablation: appearance only) for the comparison the script prints; only the temporal model is saved.

Measured on the held-out test split (features of the same decoder): text -> video R@1 over every caption, and
motion-only pairwise accuracy (the clip's motion query scored above one other-direction counterfactual; ties
count half; chance 0.5), for the temporal model, the ablation, and frame-mean pooling of the base image model
itself (`mmeval.models.frame_pooling`, its own text tower). Deterministic: seeded, one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmeval.config.video import FrameSampling
from mmeval.data import shapes_video as sv
from mmeval.io.video import read_clip
from mmeval.models.base import sha256_of_path
from mmeval.models.frame_pooling import pool_frames
from mmeval.models.reference import DEMO_CHECKPOINT, ImageTransform, load_reference_module
from mmeval.models.reference_arch import PAD, tokenize
from mmeval.models.reference_video import (
    VideoReferenceConfig,
    VideoReferenceModule,
    frame_tokens,
    save_video_reference,
)

WORD = re.compile(r"[a-z0-9]+")
ZEROSHOT_TEMPLATES = ("a video of a shape {}.", "something {}.", "a shape {}.")


def frame_pixels(paths: list[Path], sampling: FrameSampling, transform: ImageTransform) -> torch.Tensor:
    """(N, T, 3, H, W) normalised frames, decoded as evaluation decodes them."""
    from PIL import Image

    return torch.stack([torch.stack([transform(Image.fromarray(f)) for f in read_clip(p, sampling).frames])
                        for p in paths])


@torch.no_grad()
def features(visual, pixels: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame: the tokens (N, T, 1 + patches, width) and the base model's projected embedding (N, T, D)."""
    out, emb = [], []
    for start in range(0, len(pixels), batch):
        chunk = pixels[start:start + batch]
        n, t = chunk.shape[:2]
        flat = chunk.reshape(n * t, *chunk.shape[2:])
        tokens = frame_tokens(visual, flat)
        out.append(tokens.reshape(n, t, *tokens.shape[1:]))
        emb.append(visual(flat).reshape(n, t, -1))
    return torch.cat(out), torch.cat(emb)


def texts_of(specs) -> dict[str, list]:
    return {"captions": [sv.clip_captions(s) for s in specs], "motion": [sv.motion_query(s) for s in specs],
            "questions": [sv.clip_questions(s) for s in specs]}  # fmt: skip


def build_vocab(base_vocab: list[str], train: dict[str, list]) -> list[str]:
    words: set[str] = set()
    corpus = [c for caps in train["captions"] for c in caps]
    corpus += [q for q, others in train["motion"] for q in [q, *others]]
    corpus += [f"{q} {' '.join(a)}" for qs in train["questions"] for q, a, _ in qs]
    corpus += [t.format(c) for t in ZEROSHOT_TEMPLATES for c in sv.CLASSNAMES]
    for text in corpus:
        words.update(WORD.findall(text.lower()))
    return [*base_vocab, *sorted(words - set(base_vocab))]


def encode(module: VideoReferenceModule, texts: list[str], vocab: dict[str, int]) -> torch.Tensor:
    """Normalised text embeddings, each distinct text encoded once (templates repeat a lot)."""
    unique = sorted(set(texts))
    where = {t: i for i, t in enumerate(unique)}
    tokens = tokenize(unique, vocab, module.config.context_length)
    used = int((tokens != PAD).sum(dim=1).max())
    embedded = F.normalize(module.text(tokens[:, :used]), dim=-1)
    return embedded[torch.tensor([where[t] for t in texts])]


def train_variant(temporal: str, base_module, feats: torch.Tensor, train: dict[str, list], vocab: list[str],
                  answers: list[str], args) -> VideoReferenceModule:  # fmt: skip
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    base = os.path.relpath(DEMO_CHECKPOINT, args.out.resolve())  # "../shapes-clip" for the shipped folder
    cfg = VideoReferenceConfig(vocab=vocab, base=base, base_sha256=sha256_of_path(DEMO_CHECKPOINT),
                               name="shapes-video" if temporal == "difference" else "shapes-video-meanpool",
                               temporal=temporal, captions=sorted({c for caps in train["captions"] for c in caps}),
                               answers=answers)  # fmt: skip
    module = VideoReferenceModule(cfg, base_module.visual)
    # the text tower starts as the base's: its weights, and its word vectors for the words both vocabularies have
    base_text = base_module.text.state_dict()
    own = module.text.state_dict()
    for key, value in base_text.items():
        if key == "token_embedding.weight":
            own[key][: value.shape[0]] = value
        elif own[key].shape == value.shape:
            own[key] = value
    module.text.load_state_dict(own)
    ids = {w: i for i, w in enumerate(vocab)}
    params = [p for n, p in module.named_parameters() if not n.startswith("visual.")]
    optimiser = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    n = len(feats)
    steps = args.epochs * (n // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=steps, pct_start=0.1)
    module.train()
    step = 0
    for epoch in range(args.epochs):
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - args.batch + 1, args.batch):
            rows = order[start:start + args.batch]
            video = F.normalize(module.temporal(feats[rows]), dim=-1)
            scale = module.logit_scale.exp().clamp(max=100)
            captions = [rng.choice(train["captions"][r]) for r in rows]
            logits = scale * video @ encode(module, captions, ids).T
            target = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            # motion: the clip's query against its three counterfactuals (the true one first)
            motion = [t for r in rows for t in [train["motion"][r][0], *train["motion"][r][1]]]
            m = encode(module, motion, ids).reshape(len(rows), 4, -1)
            loss = loss + F.cross_entropy(scale * torch.einsum("bd,bkd->bk", video, m), torch.zeros(len(rows), dtype=torch.long))
            # answering: one question per clip, every candidate answer
            qa_rows = rows[: args.qa_batch]
            picked = [rng.choice(train["questions"][r]) for r in qa_rows]
            qa = encode(module, [f"{q} {a}" for q, _, _ in picked for a in answers], ids)
            qa = qa.reshape(len(qa_rows), len(answers), -1)
            log_p = F.log_softmax(scale * torch.einsum("bd,bkd->bk", video[: len(qa_rows)], qa), dim=1)
            right = torch.tensor([[a in ok for a in answers] for _, ok, _ in picked])
            loss = loss - torch.logsumexp(log_p.masked_fill(~right, -1e9), dim=1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"[{temporal}] epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f}", flush=True)
    return module.eval()


@torch.no_grad()
def measure(videos: torch.Tensor, encode_texts, test: dict[str, list]) -> dict[str, float]:
    """t2v R@1 over every caption (gallery: the test clips) and motion-only pairwise accuracy."""
    videos = F.normalize(videos.float(), dim=-1)
    captions = [c for caps in test["captions"] for c in caps]
    owner = torch.tensor([v for v, caps in enumerate(test["captions"]) for _ in caps])
    sims = encode_texts(captions) @ videos.T
    own = sims[torch.arange(len(captions)), owner]
    rank = 1 + (sims > own[:, None]).sum(dim=1)
    wins = 0.0
    pairs = 0
    for v, (query, others) in enumerate(test["motion"]):
        s = encode_texts([query, *others]) @ videos[v]
        for other in s[1:]:
            wins += 1.0 if s[0] > other else 0.5 if s[0] == other else 0.0
            pairs += 1
    return {"t2v_R@1": float((rank <= 1).float().mean()), "motion_pairwise_acc": wins / pairs}


def _shown(value) -> str:
    """An argument as recorded: paths inside the repository relative to it (no machine's folder names)."""
    if isinstance(value, Path) and value.resolve().is_relative_to(ROOT):
        return str(value.resolve().relative_to(ROOT))
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "mmeval" / "assets" / "shapes-video")
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--qa-batch", type=int, default=16, help="clips per step that train the answerer")
    parser.add_argument("--no-ablation", action="store_true", help="train only the temporal model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="compare the weights written with those in mmeval/assets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    base_module, base_cfg = load_reference_module(DEMO_CHECKPOINT)
    transform = ImageTransform(base_cfg.image_size, base_cfg.image_mean, base_cfg.image_std)
    sampling = FrameSampling(frames=args.frames)
    train_specs, train_paths = sv.clip_paths("train", args.n_train, args.seed)
    test_specs, test_paths = sv.clip_paths("test", args.n_test, args.seed)
    train_cls, _ = features(base_module.visual, frame_pixels(train_paths, sampling, transform))
    test_cls, test_emb = features(base_module.visual, frame_pixels(test_paths, sampling, transform))
    print(f"features: {time.perf_counter() - started:.0f}s", flush=True)
    train, test = texts_of(train_specs), texts_of(test_specs)
    vocab = build_vocab(base_cfg.vocab, train)
    answers = sorted({a for qs in train["questions"] for _, ok, _ in qs for a in ok})

    results = {}
    base_ids = {w: i for i, w in enumerate(base_cfg.vocab)}
    results["frame-mean pooling of shapes-clip (image model as is)"] = measure(
        pool_frames(test_emb, "mean"),
        lambda texts: F.normalize(base_module.text(tokenize(texts, base_ids, base_cfg.context_length)), dim=-1), test)
    for temporal in ("difference",) if args.no_ablation else ("mean", "difference"):
        module = train_variant(temporal, base_module, train_cls, train, vocab, answers, args)
        ids = {w: i for i, w in enumerate(vocab)}
        label = "shapes-video (motion map + frame mean)" if temporal == "difference" else \
            "ablation: mean of frame features, same training"
        with torch.no_grad():
            results[label] = measure(module.temporal(test_cls),
                                     lambda texts, module=module, ids=ids: encode(module, texts, ids), test)
        if temporal == "difference":
            save_video_reference(module, args.out)
    results["chance"] = {"t2v_R@1": 1 / args.n_test, "motion_pairwise_acc": 0.5}
    summary = {"trained_on": f"shapes_video train split, {args.n_train} clips, seed {args.seed}",
               "measured_on": f"shapes_video test split, {args.n_test} clips, seed {args.seed}",
               "sampling": sampling.key(), "args": {k: _shown(v) for k, v in vars(args).items()},
               "results": results, "seconds": round(time.perf_counter() - started)}  # fmt: skip
    (args.out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'model':58s} {'t2v_R@1':>8s} {'motion pairwise':>16s}")
    for label, row in results.items():
        print(f"{label:58s} {row['t2v_R@1']:8.3f} {row['motion_pairwise_acc']:16.3f}")
    print(f"total {time.perf_counter() - started:.0f}s")
    if args.check:
        shipped = ROOT / "mmeval" / "assets" / "shapes-video" / "model.safetensors"
        same = shipped.read_bytes() == (args.out / "model.safetensors").read_bytes()
        print("weights identical to the shipped ones" if same else "weights DIFFER from the shipped ones")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
