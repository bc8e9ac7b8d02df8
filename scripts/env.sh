# Sourced by scripts/demo.sh and scripts/test.sh: create .venv (once) and install mmeval with the given extras.
# torch is pinned to the build this project is tested with; pip takes it from the local wheel cache when present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
extras="$1"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
stamp=".venv/.mmeval-installed-$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
  python -m pip install --quiet -e ".[$extras]"
  touch "$stamp"
fi
