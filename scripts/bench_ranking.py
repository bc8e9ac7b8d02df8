"""Time and peak memory of exact retrieval ranking (`compute_ranks`) for N images x N captions.

Run from the repository root with mmeval importable (installed, or PYTHONPATH=.):

    python scripts/bench_ranking.py [--sizes 10000 50000 200000] [--dim 16] [--captions 1]
                                    [--chunk-mib 256] [--chunk-rows 0] [--device cpu] [--threads 0]

Each size runs in a fresh Python process (Linux: it reads /proc/self); the extra memory is the peak resident
memory during ranking (VmHWM, reset just before) minus the resident memory just before ranking (embeddings
already built). --captions k gives each of N // k images k captions (N captions in all). On CUDA the reported
memory is torch's peak allocation on the device instead. Prints one line per size and, with --json, writes
the same numbers as a list of records.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# The measured run, executed with `python -c` so that nothing else has touched the process's memory.
CHILD = """
import json, resource, sys, time
import numpy as np, torch
from mmeval.metrics.retrieval import compute_ranks

n, dim, captions, chunk_mib, chunk_rows, device, threads = sys.argv[1:8]
n, dim, captions, chunk_rows, threads = int(n), int(dim), int(captions), int(chunk_rows), int(threads)
chunk_mib = float(chunk_mib)
if threads:
    torch.set_num_threads(threads)
gen = torch.Generator().manual_seed(0)
n_images = n // captions
images = torch.nn.functional.normalize(torch.randn(n_images, dim, generator=gen), dim=1).to(device)
owner = torch.arange(n) % n_images
texts = torch.nn.functional.normalize(images.cpu()[owner] + torch.randn(n, dim, generator=gen), dim=1).to(device)
if device.startswith("cuda"):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
else:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS: only the ranking's peak counts
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * resource.getpagesize()
wall, cpu = time.perf_counter(), time.process_time()
ranks = compute_ranks(images, texts, owner.numpy(), chunk_size=chunk_rows or None, max_chunk_bytes=int(chunk_mib * 2**20))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
if device.startswith("cuda"):
    peak = torch.cuda.max_memory_allocated()
else:
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
print(json.dumps({"n": n, "dim": dim, "captions": captions, "chunk_mib": chunk_mib, "chunk_rows": chunk_rows, "device": device,
                  "threads": torch.get_num_threads(), "ms": wall * 1e3, "cpu_ms": cpu * 1e3,
                  "extra_mb": (peak - before) / 1e6, "full_matrix_mb": 4 * n * n_images / 1e6,
                  "t2i_R@1": float(np.mean(ranks.t2i == 1))}))
"""


def run_one(n: int, args: argparse.Namespace) -> dict:
    """Rank n captions against n // captions images in a fresh process and return its measurements."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", CHILD, str(n), str(args.dim), str(args.captions), str(args.chunk_mib),
               str(args.chunk_rows), args.device, str(args.threads)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise SystemExit(f"size {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--captions", type=int, default=1, help="captions per image")
    parser.add_argument("--chunk-mib", type=float, default=256, help="max_chunk_bytes, in MiB")
    parser.add_argument("--chunk-rows", type=int, default=0, help="chunk_size: queries per chunk (0: from the budget)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the records here")
    args = parser.parse_args()

    records = []
    for n in args.sizes:
        r = run_one(n, args)
        records.append(r)
        chunk = f"rows={r['chunk_rows']}" if r["chunk_rows"] else f"budget {r['chunk_mib']:g} MiB"
        print(f"N={n:>9,d} x {n // args.captions:>9,d} dim={r['dim']:<4d} {r['device']:<6s} threads={r['threads']} "
              f"{chunk}: {r['ms']:>10.0f} ms (cpu {r['cpu_ms']:.0f} ms), "
              f"peak extra {r['extra_mb']:7.1f} MB (full score matrix {r['full_matrix_mb']:,.0f} MB)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
