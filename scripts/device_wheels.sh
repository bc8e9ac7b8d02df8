#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (x86_64, CPython 3.12, no internet) into .device/wheels/, so that
# mmeval, its tests and scripts/bench_retrieval.py (with CLIP_benchmark) run there after
#
#     pip install --no-index --no-deps .device/wheels/*.whl
#
# That machine already has torch, torchvision, transformers (with huggingface-hub), rich, typer, pyyaml,
# scikit-learn, pillow, numpy, safetensors, timm, tqdm, pandas and regex. Missing, and fetched here:
#   mmeval:          pydantic pydantic-core annotated-types typing-inspection
#                    jsonschema referencing rpds-py jsonschema-specifications attrs (jsonschema and referencing need attrs)
#                    pycocotools (the coco data format)
#   open_clip:       open_clip_torch ftfy wcwidth
#   CLIP_benchmark:  clip-benchmark webdataset braceexpand
# Left out on purpose: pycocoevalcap (a 104 MB wheel of Java jars; CLIP_benchmark imports it for captioning only,
# and scripts/bench_retrieval.py gives that import a placeholder when it is missing).
#
# Versions are pinned to those installed in .venv (VENV_PYTHON=... to use another interpreter), unpinned where
# a package is not installed there. Usage, from anywhere:  scripts/device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
DEST=.device/wheels
LIMIT_MB=60
PACKAGES=(
    pydantic pydantic-core annotated-types typing-inspection
    jsonschema referencing rpds-py jsonschema-specifications attrs
    pycocotools
    open_clip_torch ftfy wcwidth
    clip-benchmark webdataset braceexpand
)

# .device/ holds downloads, never commits: excluded locally (.git/info/exclude), not in the shared .gitignore.
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"

# name==version as installed in the venv, or the bare name.
specs=()
for package in "${PACKAGES[@]}"; do
    version=$("$VENV_PYTHON" -c 'import sys, importlib.metadata as m
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass' "$package")
    specs+=("${package}${version:+==$version}")
done
echo "wheels for: ${specs[*]}"

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$VENV_PYTHON" -m pip download --only-binary=:all: --no-deps \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --python-version 3.12 --implementation cp \
    --dest "$DEST" "${specs[@]}"

echo
ls -l "$DEST"/*.whl | awk '{printf "%10d  %s\n", $5, $NF}'
total=$(cat "$DEST"/*.whl | wc -c)
count=$(ls "$DEST"/*.whl | wc -l)
echo "$count wheels, $(awk -v b="$total" 'BEGIN {printf "%.1f", b / 1e6}') MB in $DEST (limit $LIMIT_MB MB)"
if [ "$count" -ne "${#PACKAGES[@]}" ]; then
    echo "error: expected ${#PACKAGES[@]} wheels" >&2
    exit 1
fi
if [ "$total" -gt $((LIMIT_MB * 1000 * 1000)) ]; then
    echo "error: over $LIMIT_MB MB" >&2
    exit 1
fi
echo "on the device:  pip install --no-index --no-deps $DEST/*.whl"
