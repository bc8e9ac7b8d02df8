"""Exact retrieval ranking of a 200k x 200k gallery in bounded memory: time, peak extra memory, spot checks.

`compute_ranks` never holds the N x N score matrix (149 GiB as float32 at N = 200k): it scores chunks of at most
DEFAULT_MAX_CHUNK_BYTES. This script ranks N images x N captions in a fresh process (Linux: it reads
/proc/self), prints the seconds and the peak resident memory the ranking added (VmHWM, reset just before,
minus the resident memory just before), checks it against the bound (the chunk budget + 64 MiB for indices,
ranks and BLAS workspace), and checks 200 random text->image and 200 image->text ranks against a brute-force
count. Embeddings are small integers stored as float32: every dot product is an exact integer whatever the
summation order, so the check is exact and there are many genuine ties to get right.

    python scripts/bench_ranking_memory.py [--n 200000] [--dim 8] [--json]

At N = 200k, dim 8, on the 2-core dev box: ~55 CPU-seconds; 35 s of wall time with two threads on an idle
machine, up to ~130 s when other jobs share the cores (this is why it is a script, not a test; the test suite
runs the same code at N = 10k: tests/test_retrieval_metrics.py). Exits 1 when the bound or a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# The measured run, executed with `python -c` so that nothing else has touched the process's memory.
CHILD = """
import json, sys, time
import numpy as np, torch
from mmeval.metrics.retrieval import compute_ranks

n, dim, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
gen = torch.Generator().manual_seed(0)
images = torch.randint(-8, 9, (n, dim), generator=gen, dtype=torch.float32)
owner = torch.randperm(n, generator=gen)
texts = images[owner].add_(torch.randint(-4, 5, (n, dim), generator=gen, dtype=torch.float32))
owner = owner.numpy()
compute_ranks(images[:64], texts[:64], np.arange(64))  # loads BLAS / kernel code pages: not ranking memory

def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: earlier peaks are not the ranking's
resident_kib = status_kib("VmRSS")
start = time.perf_counter()
ranks = compute_ranks(images, texts, owner)
seconds = time.perf_counter() - start
peak_kib = status_kib("VmHWM")
np.savez(out, images=images.numpy().astype(np.int8), texts=texts.numpy().astype(np.int8), owner=owner,
         t2i=ranks.t2i, i2t=ranks.i2t)
print(json.dumps({"seconds": seconds, "extra_mib": (peak_kib - resident_kib) / 1024}))
"""


def bound_mib() -> float:
    """The memory the ranking may add: the score-buffer budget plus 64 MiB."""
    from mmeval.metrics.retrieval import DEFAULT_MAX_CHUNK_BYTES

    return DEFAULT_MAX_CHUNK_BYTES / 2**20 + 64


def rank_in_fresh_process(n: int, dim: int, out: Path) -> dict:
    """Rank n x n in a new Python process; its ranks and embeddings go to `out` (.npz). Returns seconds and
    extra_mib."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), str(dim), str(out)], check=False,
                          capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def spot_check(out: Path, samples: int = 200, seed: int = 0) -> int:
    """Brute-force ranks of `samples` random queries each way (ties count against the model); AssertionError on
    the first mismatch. Returns the number of queries checked."""
    data = np.load(out)
    images, texts = data["images"].astype(np.float64), data["texts"].astype(np.float64)
    owner, t2i, i2t = data["owner"], data["t2i"], data["i2t"]
    n = len(images)
    assert t2i.min() >= 1 and t2i.max() <= n and i2t.min() >= 1 and i2t.max() <= n
    rng = np.random.default_rng(seed)
    for text in rng.choice(n, size=min(samples, n), replace=False):
        scores = images @ texts[text]  # exact: small integers
        assert t2i[text] == np.count_nonzero(scores >= scores[owner[text]]), text
    caption_of = np.argsort(owner)  # one caption per image
    for image in rng.choice(n, size=min(samples, n), replace=False):
        scores = texts @ images[image]
        assert i2t[image] == np.count_nonzero(scores >= scores[caption_of[image]]), image
    return 2 * min(samples, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    args = parser.parse_args()
    if sys.platform != "linux":
        sys.exit("bench_ranking_memory.py reads /proc/self: Linux only")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        report = rank_in_fresh_process(args.n, args.dim, Path(folder) / "ranks.npz")
        checked = spot_check(Path(folder) / "ranks.npz")
    full_gib = args.n * args.n * 4 / 2**30
    within = report["extra_mib"] < bound_mib()
    print(f"{args.n:,} x {args.n:,} ranking (dim {args.dim}): {report['seconds']:.1f} s, peak extra memory "
          f"{report['extra_mib']:.0f} MiB (bound {bound_mib():.0f} MiB: {'ok' if within else 'OVER'}; the full "
          f"float32 score matrix would take {full_gib:.1f} GiB); {checked} ranks equal a brute-force count; "
          f"{time.perf_counter() - started:.1f} s in all")  # fmt: skip
    if args.json:
        print(json.dumps({**report, "n": args.n, "dim": args.dim, "bound_mib": bound_mib(), "checked": checked}))
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
