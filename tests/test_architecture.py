"""The architecture's promises, checked: tasks are named only in their own folder and the registry, module-level
imports have no cycles, and every built-in task folder exposes a complete TaskSpec."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mmeval.models.base import CAPABILITIES
from mmeval.registry import TASKS, task_spec
from mmeval.tasks.spec import TaskSpec

PACKAGE = Path(__file__).parents[1] / "mmeval"


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_task_names_appear_only_in_their_folder_and_the_registry() -> None:
    """The README's grep: `grep -rnE "[\\"'](retrieval|...)[\\"']" mmeval --include=*.py`, minus each task's folder."""
    literal = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, TASKS)))
    found = []
    for path in _python_files():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "registry.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in literal.finditer(line):
                if not rel.startswith(f"tasks/{match.group(1)}/"):
                    found.append(f"mmeval/{rel}:{number}: {line.strip()}")
    assert found == []


def _imports(path: Path, module: str) -> set[str]:
    """mmeval modules that `path` imports at module level (function-level imports are deliberate: start-up)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("mmeval"):
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.startswith("mmeval")}
    return out


def test_module_level_imports_have_no_cycles() -> None:
    modules = {_module_name(path): path for path in _python_files()}
    graph = {name: {dep for dep in _imports(path, name) if dep in modules and dep != name}
             for name, path in modules.items()}
    # importing a.b.c runs a/__init__ and a/b/__init__ first: a package's __init__ is a dependency too
    for name in list(graph):
        parts = name.split(".")
        graph[name] |= {".".join(parts[:n]) for n in range(1, len(parts)) if ".".join(parts[:n]) in modules} - {name}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert [cycle for cycle in cycles if not _within_one_package(cycle.split(" -> "))] == []


def _within_one_package(steps: list[str]) -> bool:
    """A package whose __init__ imports its own submodules: the one loop Python resolves (the package runs first)."""
    root = min(steps, key=len)
    return all(step == root or step.startswith(root + ".") for step in steps)


def test_every_builtin_task_folder_declares_its_spec() -> None:
    for name in TASKS:
        spec = task_spec(name)
        assert isinstance(spec, TaskSpec) and spec.name == name
        assert (PACKAGE / "tasks" / name / "__init__.py").is_file()
        for attribute in ("run", "load_data", "paired"):
            assert callable(spec.load(attribute)), (name, attribute)
        assert spec.metrics and all(isinstance(better, bool) for better, _ in spec.metrics.values())
        assert spec.needs in CAPABILITIES  # a protocol of mmeval.models.base
        assert "task" in spec.config.model_fields and "data" in spec.config.model_fields
