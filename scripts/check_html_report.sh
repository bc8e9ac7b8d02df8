#!/usr/bin/env bash
# Look at the HTML report as a browser shows it: evaluate two checkpoints (the biased and the balanced shapes-clip
# on configs/shapes_bias.yaml: retrieval, zero-shot and captioning, each with a bias block), write one HTML report
# of both, and screenshot it in headless Chromium with DNS blocked (a page that needed the network would show
# holes). Open the PNGs and check every figure, table and gallery card.
#
#   bash scripts/check_html_report.sh [OUT_DIR]        (about 3 minutes on 2 CPU cores; default /tmp/mmeval-html-check)
#
# Writes OUT_DIR/report.html, OUT_DIR/report.png (the whole page) and OUT_DIR/report-1.png, -2.png, ... (slices
# 1,600 px high, small enough for an image viewer). Needs Chromium: apt-get install -y chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
out="${1:-/tmp/mmeval-html-check}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "error: Chromium not found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
rm -rf "$out" && mkdir -p "$out/runs"
balanced=mmeval/assets/shapes-clip-balanced
evaluate() {  # evaluate NAME [--set ...]: a report OUT_DIR/runs/NAME.json, the run's output in NAME.log
  local name="$1"; shift
  mmeval run -c configs/shapes_bias.yaml -o "$out/runs" --no-cache --set output.name="$name" "$@" \
    > "$out/runs/$name.log" 2>&1 || { echo "error: mmeval run failed; see $out/runs/$name.log" >&2; exit 1; }
}
evaluate biased
evaluate balanced --set model.checkpoint=$balanced --set "benchmarks[1].bias.training_counts=$balanced/training_counts.json"
mmeval report "$out/runs/biased.json" "$out/runs/balanced.json" --html "$out/report.html"
# --no-sandbox: Chromium refuses to start as root without it (containers, CI).
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --host-resolver-rules="MAP * ~NOTFOUND" \
  --window-size=1100,20000 --screenshot="$out/full.png" "file://$(realpath "$out/report.html")" 2> "$out/chromium.log"
python - "$out" <<'EOF'
"""Cut the screenshot's blank bottom off and slice it for viewing."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

out = Path(sys.argv[1])
page = Image.open(out / "full.png").convert("RGB")
rows = np.flatnonzero((np.asarray(page) < 250).any(axis=(1, 2)))
page = page.crop((0, 0, page.width, int(rows[-1]) + 24))
if page.height >= 20000 - 24:
    print("warning: the page is taller than the 20,000 px window; the screenshot is cut", file=sys.stderr)
page.save(out / "report.png")
(out / "full.png").unlink()
slices = range(0, page.height, 1600)
for n, top in enumerate(slices, 1):
    page.crop((0, top, page.width, min(top + 1600, page.height))).save(out / f"report-{n}.png")
print(f"{out / 'report.html'}: {(out / 'report.html').stat().st_size / 1024:,.0f} KiB; "
      f"screenshot {out / 'report.png'} ({page.width} x {page.height} px) in {len(slices)} slices report-N.png")
EOF
