"""Every module under mmeval/ imports on its own (no cycles, no missing names, no import-time failures).

Run in a fresh interpreter, one module after another in sorted order, so that it does not depend on what
the other tests imported first. This is the fast tier's floor: a module no test exercises still fails here
when it cannot be imported. The modules each tier exercises are listed by MMEVAL_MODULES_USED (conftest.py).
"""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "mmeval"


def module_names() -> list[str]:
    """Dotted names of every .py file under mmeval/ (packages by their __init__), from the file tree; not
    mmeval/__main__.py, which runs the CLI when imported (tests/test_startup.py runs `python -m mmeval`)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports() -> None:
    names = module_names()
    assert len(names) > 50 and "mmeval.cli.app" in names and "mmeval.metrics.caption" in names
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint(len(sys.argv) - 1)"
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(len(names))
