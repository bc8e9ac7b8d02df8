#!/usr/bin/env bash
# The CUDA checks and GPU timings, in one run on a GPU machine, from the repository root. Results (reports,
# logs, JSON summaries) go to $OUT. Needs torch, torchvision, transformers, rich, typer, pyyaml, pillow there;
# the other packages can be carried as wheels in .device/wheels (bash scripts/device_wheels.sh builds them).
#
#   OUT=/tmp/gpu bash scripts/gpu_check.sh
#
# 1. the demo on CUDA in bf16 and fp32 (CUDA code paths: placement, pinned copies, autocast, sync'd timers)
# 2. `mmeval bench` of the reference model: batch sizes x precisions
# 3. scripts/bench_retrieval.py: 5,000 JPEGs, open_clip ViT-B-32, mmeval vs CLIP_benchmark at batch 256 /
#    16 workers; mmeval cold (GPU JPEG decoding) and with the preprocessed-image cache warm
# 4. the same retrieval with JPEGs decoded on the CPU vs the GPU: how far the metrics move
# 5. `mmeval bench` of ViT-B-32 (image and text encoders) in fp32 and bf16
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/.device/pylib PYTHONUNBUFFERED=1 MMEVAL_CACHE_DIR=/tmp/mmeval-cache
step() { echo "=== $* ($(date +%T))"; }

if compgen -G ".device/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps .device/wheels/*.whl 2>&1 | tail -3
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"

step "0. CUDA unit tests"
python3 -m pytest -q -p no:cacheprovider tests/test_retrieval_metrics.py tests/faults/test_images.py \
    -k "cuda or nvjpeg" 2>&1 | tail -5   # chunked ranking on CUDA; nvJPEG decodes / refuses what the CPU path does

step "1. demo on CUDA"
for precision in bf16 fp32; do
    python3 -m mmeval run -c configs/demo.yaml --no-cache -o "$OUT" --set output.name="demo-cuda-$precision" \
        --set runtime.device=cuda --set runtime.precision=$precision 2>&1 | tail -30
done

step "2. bench: reference model"
python3 -m mmeval bench -c configs/demo.yaml -b 1,32,256 -p fp32,bf16 -n 20 -o "$OUT" \
    --set output.name=bench-reference --set runtime.device=cuda 2>&1 | tail -20

step "3. retrieval: mmeval vs CLIP_benchmark, 5,000 JPEGs"
python3 scripts/bench_retrieval.py --images 5000 --device cuda --cb-batch-size 256 --cb-workers 16 \
    --batch-size 256 --repeats 2 --workdir /tmp/bench5k --json "$OUT/bench_retrieval.json" \
    --mmeval-extra-args "--set runtime.cache=pixels --set runtime.cache_dir=/tmp/bench5k/cache" \
    --fresh /tmp/bench5k/cache 2>&1 | tail -40

step "4. GPU vs CPU JPEG decoding: metrics"
for decode in cpu gpu; do
    python3 -m mmeval run -c /tmp/bench5k/runs/mmeval.yaml --no-cache -o "$OUT" --set output.name="decode-$decode" \
        --set "benchmarks[0].data.decode=$decode" --set runtime.precision=fp32 2>&1 | tail -3
done
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
cpu, gpu = (json.loads((out / f"decode-{d}.json").read_text()) for d in ("cpu", "gpu"))
(name,) = cpu["benchmarks"]
a, b = cpu["benchmarks"][name], gpu["benchmarks"][name]
print("pixels:", a["dataset"]["pixels_from"], "vs", b["dataset"]["pixels_from"])
for metric in a["metrics"]:
    x, y = a["metrics"][metric]["value"], b["metrics"][metric]["value"]
    print(f"{metric:16s} cpu {x:.4f}  gpu {y:.4f}  diff {y - x:+.4f}")
print("wall s: cpu", round(a["timings"]["total_s"], 2), "gpu", round(b["timings"]["total_s"], 2))
EOF

step "5. bench: open_clip ViT-B-32"
python3 -m mmeval bench -c /tmp/bench5k/runs/mmeval.yaml -b 1,64,256 -p fp32,bf16 -n 20 -o "$OUT" \
    --set output.name=bench-vitb32 2>&1 | tail -20
step "done"
